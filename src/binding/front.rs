//! What the JS front (`lib/front.js`) needs from the addon to answer repeat `getWeather` hits
//! without crossing N-API, and to hand them back.
//!
//! Two buffers the front reads as typed arrays, with no call:
//! - the versions of users' entries (`Engine::watch_users`, `u32`s moved by other threads too):
//!   while a user's has not moved, what the user was last answered is what a lookup finds;
//! - a view of the last `getWeather` call, written on the JS thread before the call returns
//!   (`VIEW_*` below), and of the manual clock.
//!
//! Both are external `ArrayBuffer`s over memory owned by an `Arc` that the buffer's finalizer
//! releases: the service and the buffers may be collected in any order. The front's hits come
//! back through `frontFlush` (`Engine::replay_user_hits`) before any other call reaches the
//! engine, so counters and recency end up as if every hit had been made here.

use std::cell::UnsafeCell;
use std::ffi::c_void;
use std::ptr;
use std::sync::Arc;

use napi::bindgen_prelude::*;
use napi::{sys, Env};

use weather_cache_core::cache::{Entry, UserVersions};

/// `1` when the last call was answered at once from a fresh entry that is now the user's
/// newest; `0` otherwise (the rest of the view is then stale). JS sets it to `0` before a call.
pub const VIEW_ANSWERED: usize = 0;
pub const VIEW_LAT: usize = 1;
pub const VIEW_LON: usize = 2;
pub const VIEW_EXPIRES_AT: usize = 3;
/// The user's version bucket, and its version right after that answer (under the engine's lock).
pub const VIEW_BUCKET: usize = 4;
pub const VIEW_VERSION: usize = 5;
/// The manual clock's time (set on attach and after every `advanceTime`).
pub const VIEW_NOW: usize = 6;
const VIEW_LEN: usize = 7;

/// The view's memory. Written and read on the JS thread only (in a call, or by JS between calls).
pub struct FrontView(UnsafeCell<[f64; VIEW_LEN]>);

impl FrontView {
    // An `Arc` though it never leaves the JS thread (the service and the buffer's finalizer
    // both live there): `buffers` hands both buffers over the same way.
    #[allow(clippy::arc_with_non_send_sync)]
    pub fn new() -> Arc<FrontView> {
        Arc::new(FrontView(UnsafeCell::new([0.0; VIEW_LEN])))
    }

    fn set(&self, index: usize, value: f64) {
        // SAFETY: JS thread only (see the type); no reference into the array outlives this.
        unsafe { (*self.0.get())[index] = value }
    }

    /// The call was answered at once from `entry`, which is now the user's newest; JS may
    /// answer its next calls until `until` (the entry's expiry, or earlier: from the start of
    /// its refresh-ahead window on, calls go to the engine, which refreshes the area).
    pub fn answered(&self, entry: &Entry, until: i64, (bucket, version): (usize, u32)) {
        self.set(VIEW_LAT, entry.location.lat);
        self.set(VIEW_LON, entry.location.lon);
        self.set(VIEW_EXPIRES_AT, until.min(entry.expires_at) as f64);
        self.set(VIEW_BUCKET, bucket as f64);
        self.set(VIEW_VERSION, f64::from(version));
        self.set(VIEW_ANSWERED, 1.0);
    }

    /// The call gave the front nothing to remember.
    pub fn nothing(&self) {
        self.set(VIEW_ANSWERED, 0.0);
    }

    pub fn clock(&self, now: i64) {
        self.set(VIEW_NOW, now as f64);
    }
}

/// `(versions, view)`: the two buffers, each keeping its memory alive.
pub fn buffers<'e>(env: &'e Env, versions: Arc<UserVersions>, view: Arc<FrontView>) -> Result<(Unknown<'e>, Unknown<'e>)> {
    let counters = versions.as_slice();
    let (versions_data, versions_len) = (counters.as_ptr().cast_mut().cast::<c_void>(), std::mem::size_of_val(counters));
    let view_data = view.0.get().cast::<c_void>();
    // SAFETY: each pointer points into the allocation its `Arc` owns, which the buffer keeps.
    let versions = unsafe { external(env, versions, versions_data, versions_len)? };
    let view = unsafe { external(env, view, view_data, VIEW_LEN * std::mem::size_of::<f64>())? };
    Ok((versions, view))
}

/// An `ArrayBuffer` over `len` bytes at `data`, which `owner` keeps alive until the buffer is
/// collected. Fails where the runtime forbids external buffers (V8's sandbox); the front then
/// stays off.
unsafe fn external<'e, T: 'static>(env: &'e Env, owner: Arc<T>, data: *mut c_void, len: usize) -> Result<Unknown<'e>> {
    let hint = Arc::into_raw(owner).cast_mut().cast::<c_void>();
    let mut value = ptr::null_mut();
    // SAFETY: plain N-API call on the JS thread; `release::<T>` takes back the `Arc` on success.
    let status =
        unsafe { sys::napi_create_external_arraybuffer(env.raw(), data, len, Some(release::<T>), hint, &mut value) };
    if status != sys::Status::napi_ok {
        // SAFETY: not handed over: the `Arc` is still ours.
        drop(unsafe { Arc::from_raw(hint.cast_const().cast::<T>()) });
        return Err(Error::new(Status::GenericFailure, "external ArrayBuffers are not available".to_owned()));
    }
    // SAFETY: a value N-API just created.
    Ok(unsafe { Unknown::from_raw_unchecked(env.raw(), value) })
}

unsafe extern "C" fn release<T>(_env: sys::napi_env, _data: *mut c_void, hint: *mut c_void) {
    // SAFETY: the `Arc` `external` turned into this hint, released once, here.
    drop(unsafe { Arc::from_raw(hint.cast_const().cast::<T>()) });
}
