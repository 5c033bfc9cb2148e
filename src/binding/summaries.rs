//! One frozen summary object per hot cache entry, and one Promise already resolved with it. A
//! `getWeather` hit hands out what its entry already has instead of building an object and a
//! Promise (building the object, with its property definitions and string internalization, was
//! most of a hit's cost). Frozen, because every caller shares it. Only the most recently used
//! entries keep theirs (`HOT`), so the JS side adds nothing per entry to a large cache.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::sync::{Arc, Weak};

use lru::LruCache;

use napi::bindgen_prelude::*;
use napi::{sys, Env, JsValue};

use super::values::WeatherSummary;
use crate::cache::Entry;

/// Entries whose objects are kept.
const HOT: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// Lives on the JS thread only (it holds N-API references), inside one `WeatherService`.
pub struct Summaries {
    env: sys::napi_env,
    slots: RefCell<LruCache<usize, Slot>>,
}

struct Slot {
    /// Never read: it keeps the entry's allocation (not the entry) alive, so that no other entry
    /// can take the address this slot is keyed by.
    _pin: Weak<Entry>,
    object: sys::napi_ref,
    /// `Promise.resolve(object)`, made on the first synchronous hit.
    resolved: Option<sys::napi_ref>,
}

impl Summaries {
    pub fn new(env: &Env) -> Summaries {
        Summaries { env: env.raw(), slots: RefCell::new(LruCache::new(HOT)) }
    }

    /// The entry's frozen `{ condition, tempC, tempF }`, built on first use.
    pub fn get<'e>(&self, env: &'e Env, entry: &Arc<Entry>) -> Result<Unknown<'e>> {
        let key = Arc::as_ptr(entry) as usize;
        if let Some(slot) = self.slots.borrow_mut().get(&key) {
            return value_of(env, slot.object);
        }
        let mut object = WeatherSummary::of(entry).into_unknown(env)?.coerce_to_object()?;
        object.freeze()?;
        let slot = Slot { _pin: Arc::downgrade(entry), object: reference_to(env, object.raw())?, resolved: None };
        if let Some((_, evicted)) = self.slots.borrow_mut().push(key, slot) {
            evicted.release(self.env);
        }
        Ok(object.to_unknown())
    }

    /// A Promise already resolved with the entry's summary: the same one for every hit.
    pub fn resolved<'e>(&self, env: &'e Env, entry: &Arc<Entry>) -> Result<PromiseRaw<'e, Unknown<'e>>> {
        let key = Arc::as_ptr(entry) as usize;
        if let Some(promise) = self.slots.borrow_mut().get(&key).and_then(|slot| slot.resolved) {
            return Ok(PromiseRaw::new(env.raw(), value_of(env, promise)?.raw()));
        }
        let promise = PromiseRaw::resolve(env, self.get(env, entry)?)?;
        let reference = reference_to(env, promise.raw())?;
        match self.slots.borrow_mut().get_mut(&key) {
            Some(slot) => slot.resolved = Some(reference),
            // SAFETY: our own reference, on the JS thread (the slot it was for is gone).
            None => {
                unsafe { sys::napi_delete_reference(env.raw(), reference) };
            }
        };
        Ok(promise)
    }
}

impl Drop for Summaries {
    fn drop(&mut self) {
        // Runs in the service's finalizer, on the JS thread of the env that owns the references.
        while let Some((_, slot)) = self.slots.get_mut().pop_lru() {
            slot.release(self.env);
        }
    }
}

impl Slot {
    fn release(&self, env: sys::napi_env) {
        // SAFETY: deleting our own references, on the JS thread of the env that made them.
        unsafe {
            sys::napi_delete_reference(env, self.object);
            if let Some(resolved) = self.resolved {
                sys::napi_delete_reference(env, resolved);
            }
        }
    }
}

/// A strong (count 1) reference to a value of this env.
fn reference_to(env: &Env, value: sys::napi_value) -> Result<sys::napi_ref> {
    let mut reference = std::ptr::null_mut();
    // SAFETY: plain N-API call on the JS thread.
    check_status!(unsafe { sys::napi_create_reference(env.raw(), value, 1, &mut reference) })?;
    Ok(reference)
}

fn value_of<'e>(env: &'e Env, reference: sys::napi_ref) -> Result<Unknown<'e>> {
    let mut value = std::ptr::null_mut();
    // SAFETY: the reference was made on this env and is deleted only on eviction or drop.
    check_status!(unsafe { sys::napi_get_reference_value(env.raw(), reference, &mut value) })?;
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

/// An already built JS value placed into a `#[napi(object)]` result as is.
pub struct JsValueOf(sys::napi_value);

impl JsValueOf {
    pub fn new(value: Unknown) -> JsValueOf {
        JsValueOf(value.raw())
    }
}

impl ToNapiValue for JsValueOf {
    unsafe fn to_napi_value(_: sys::napi_env, value: Self) -> Result<sys::napi_value> {
        Ok(value.0)
    }
}
