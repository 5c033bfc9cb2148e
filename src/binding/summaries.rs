//! One frozen summary object per hot cache entry, and one Promise already resolved with it. A
//! `getWeather` hit hands out what its entry already has instead of building an object and a
//! Promise (building the object, with its property definitions and string internalization, was
//! most of a hit's cost). Frozen, because every caller shares it. Only the most recently used
//! entries keep theirs (`HOT`), so the JS side adds nothing per entry to a large cache.
//!
//! The objects are N-API references, which must be used and deleted on the JS thread. Each
//! service's cache lives in a registry on its JS thread. The service reaches it directly (the
//! hit path); a pending call's completion callback, which may be dropped on a tokio thread when
//! the runtime shuts down, holds only its `SummariesId`, a plain number.

use std::cell::RefCell;
use std::num::NonZeroUsize;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use lru::LruCache;
use napi::bindgen_prelude::*;
use napi::{sys, Env, JsValue};

use super::values::WeatherSummary;
use weather_cache_core::cache::Entry;

/// Entries whose objects are kept, per service.
const HOT: NonZeroUsize = NonZeroUsize::new(1024).unwrap();

/// A service's summary cache, owned by the service (JS thread only).
pub struct Summaries {
    id: u64,
    /// Into the registry's box, which stays put until `release`.
    cache: NonNull<RefCell<Cache>>,
}

/// Names a service's cache from anywhere; looked up only on the JS thread.
#[derive(Clone, Copy, Debug)]
pub struct SummariesId(u64);

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// The live services of this thread (usually one or two: a linear scan beats hashing).
#[derive(Default)]
struct Registry(Vec<(u64, Box<RefCell<Cache>>)>);

impl Registry {
    fn get(&self, id: u64) -> Option<&RefCell<Cache>> {
        self.0.iter().find(|(i, _)| *i == id).map(|(_, cache)| &**cache)
    }

    fn remove(&mut self, id: u64) -> Option<Box<RefCell<Cache>>> {
        let at = self.0.iter().position(|(i, _)| *i == id)?;
        Some(self.0.swap_remove(at).1)
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        // The thread is exiting and its env may be gone: leak the references rather than
        // delete them through a dead env.
        for (_, cache) in self.0.drain(..) {
            std::mem::forget(cache);
        }
    }
}

struct Cache {
    env: sys::napi_env,
    slots: LruCache<usize, Slot>,
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
    /// A new, empty cache for a service living on this (JS) thread.
    pub fn register(env: &Env) -> Summaries {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let cache = Box::new(RefCell::new(Cache { env: env.raw(), slots: LruCache::new(HOT) }));
        let pointer = NonNull::from(&*cache);
        REGISTRY.with(|r| r.borrow_mut().0.push((id, cache)));
        Summaries { id, cache: pointer }
    }

    pub fn id(&self) -> SummariesId {
        SummariesId(self.id)
    }

    /// Deletes the cache and its references (the service's finalizer, on the JS thread). If the
    /// registry is in use right then (a finalizer running during our own call), the cache is
    /// leaked instead: a rare, bounded loss, never a crash.
    pub fn release(&self) {
        let removed = REGISTRY.with(|r| r.try_borrow_mut().ok().and_then(|mut r| r.remove(self.id)));
        drop(removed);
    }

    /// A Promise already resolved with the entry's summary: the same one for every hit.
    pub fn resolved<'e>(&self, env: &'e Env, entry: &Arc<Entry>) -> Result<PromiseRaw<'e, Unknown<'e>>> {
        with_cache(Some(self.cell()), env, entry, |cache, key| {
            if let Some(slot) = cache.slots.get_mut(&key) {
                if let Some(promise) = slot.resolved {
                    return Ok(PromiseRaw::new(env.raw(), value_of(env, promise)?.raw()));
                }
                let promise = PromiseRaw::resolve(env, value_of(env, slot.object)?)?;
                slot.resolved = Some(reference_to(env, promise.raw())?);
                return Ok(promise);
            }
            let object = cached_object(cache, env, entry, key)?;
            let promise = PromiseRaw::resolve(env, object)?;
            if let Some(slot) = cache.slots.get_mut(&key) {
                slot.resolved = Some(reference_to(env, promise.raw())?);
            }
            Ok(promise)
        })
    }

    fn cell(&self) -> &RefCell<Cache> {
        // SAFETY: the box lives in this thread's registry until `release`, which runs when the
        // service (and so `self`) is dropped; `Summaries` is not `Send`.
        unsafe { self.cache.as_ref() }
    }
}

impl SummariesId {
    /// The entry's frozen `{ condition, tempC, tempF }` (built on first use), from anywhere on
    /// the JS thread, including callbacks that hold only the id; uncached if the service is gone.
    pub fn get<'e>(self, env: &'e Env, entry: &Arc<Entry>) -> Result<Unknown<'e>> {
        REGISTRY.with(|r| match r.try_borrow() {
            Ok(registry) => {
                with_cache(registry.get(self.0), env, entry, |cache, key| cached_object(cache, env, entry, key))
            }
            Err(_) => frozen(env, entry),
        })
    }
}

/// Runs `f` with the cache; without one (the service is gone, or the cache is in use by an
/// outer call on this thread), answers uncached.
fn with_cache<'e, T: FromUncached<'e>>(
    cell: Option<&RefCell<Cache>>,
    env: &'e Env,
    entry: &Arc<Entry>,
    f: impl FnOnce(&mut Cache, usize) -> Result<T>,
) -> Result<T> {
    match cell.and_then(|cell| cell.try_borrow_mut().ok()) {
        Some(mut cache) => f(&mut cache, Arc::as_ptr(entry) as usize),
        None => T::uncached(env, entry),
    }
}

fn cached_object<'e>(cache: &mut Cache, env: &'e Env, entry: &Arc<Entry>, key: usize) -> Result<Unknown<'e>> {
    if let Some(slot) = cache.slots.get(&key) {
        return value_of(env, slot.object);
    }
    let object = frozen(env, entry)?;
    let slot = Slot { _pin: Arc::downgrade(entry), object: reference_to(env, object.raw())?, resolved: None };
    if let Some((_, evicted)) = cache.slots.push(key, slot) {
        evicted.release(cache.env);
    }
    Ok(object)
}

/// How to answer without a cache.
trait FromUncached<'e>: Sized {
    fn uncached(env: &'e Env, entry: &Arc<Entry>) -> Result<Self>;
}

impl<'e> FromUncached<'e> for Unknown<'e> {
    fn uncached(env: &'e Env, entry: &Arc<Entry>) -> Result<Self> {
        frozen(env, entry)
    }
}

impl<'e> FromUncached<'e> for PromiseRaw<'e, Unknown<'e>> {
    fn uncached(env: &'e Env, entry: &Arc<Entry>) -> Result<Self> {
        PromiseRaw::resolve(env, frozen(env, entry)?)
    }
}

fn frozen<'e>(env: &'e Env, entry: &Entry) -> Result<Unknown<'e>> {
    let mut object = WeatherSummary::of(entry).into_unknown(env)?.coerce_to_object()?;
    object.freeze()?;
    Ok(object.to_unknown())
}

impl Drop for Cache {
    fn drop(&mut self) {
        // Runs on release, on the JS thread of the env that owns the references.
        while let Some((_, slot)) = self.slots.pop_lru() {
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
    // SAFETY: the reference was made on this env and is deleted only on eviction or release.
    check_status!(unsafe { sys::napi_get_reference_value(env.raw(), reference, &mut value) })?;
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}
