//! `getWeather` as a plain N-API function on the class prototype.
//!
//! napi-rs 3's generated glue for a `&self` method records each borrow of `self` in a
//! process-wide `Mutex<HashMap>` (to catch `&mut` aliasing across re-entrant calls), which cost
//! more than a quarter of a cache hit. `WeatherService` has only `&self` methods and keeps its
//! mutable state behind its own locks, so that bookkeeping guards nothing here. This entry point
//! does what the glue does otherwise: unwrap `this` (napi-rs wraps a `Box<WeatherService>`, the
//! same pointer its own glue casts), check the class type tag so that no foreign object is ever
//! cast, and keep panics from crossing into Node.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use napi::bindgen_prelude::*;
use napi::{sys, Env, JsValue};

use super::service::WeatherService;

/// Defines `WeatherService.prototype.getWeather` with the attributes napi-rs gives methods.
pub fn install(env: &Env, exports: &Object) -> Result<()> {
    let class: Function = exports.get_named_property("WeatherService")?;
    let prototype: Object = class.get_named_property("prototype")?;
    let mut function = ptr::null_mut();
    let name = "getWeather";
    // SAFETY: plain N-API calls on the JS thread during module registration.
    unsafe {
        check_status!(sys::napi_create_function(
            env.raw(),
            name.as_ptr().cast(),
            name.len() as isize,
            Some(get_weather),
            ptr::null_mut(),
            &mut function,
        ))?;
        let descriptor = sys::napi_property_descriptor {
            utf8name: c"getWeather".as_ptr(),
            name: ptr::null_mut(),
            method: None,
            getter: None,
            setter: None,
            value: function,
            attributes: sys::PropertyAttributes::writable
                | sys::PropertyAttributes::enumerable
                | sys::PropertyAttributes::configurable,
            data: ptr::null_mut(),
        };
        check_status!(sys::napi_define_properties(env.raw(), prototype.raw(), 1, &descriptor))
    }
}

unsafe extern "C" fn get_weather(env: sys::napi_env, info: sys::napi_callback_info) -> sys::napi_value {
    match catch_unwind(AssertUnwindSafe(|| unsafe { call(env, info) })) {
        Ok(Ok(value)) => value,
        Ok(Err(error)) => {
            unsafe { JsError::from(error).throw_into(env) };
            ptr::null_mut()
        }
        Err(_) => {
            let error = napi::Error::new(Status::GenericFailure, "weather-cache: internal error (panic) in getWeather");
            unsafe { JsError::from(error).throw_into(env) };
            ptr::null_mut()
        }
    }
}

unsafe fn call(raw_env: sys::napi_env, info: sys::napi_callback_info) -> Result<sys::napi_value> {
    let mut argc = 4usize;
    // Missing arguments come back as `undefined`.
    let mut argv = [ptr::null_mut(); 4];
    let mut this = ptr::null_mut();
    check_status!(unsafe {
        sys::napi_get_cb_info(raw_env, info, &mut argc, argv.as_mut_ptr(), &mut this, ptr::null_mut())
    })?;
    let mut wrapped = ptr::null_mut();
    let unwrapped = unsafe { sys::napi_unwrap(raw_env, this, &mut wrapped) } == sys::Status::napi_ok;
    let ours = unwrapped
        && !wrapped.is_null()
        && unsafe { validate_type_tag(raw_env, this, &<WeatherService as TypeTag>::type_tag(), "WeatherService") }
            .is_ok();
    if !ours {
        let env = Env::from_raw(raw_env);
        let message = "Value of \"this\" must be of type WeatherService";
        let error = JsTypeError::from(napi::Error::new("ERR_INVALID_THIS".to_owned(), message)).into_unknown(env);
        return Err(napi::Error::from(error));
    }
    // SAFETY: tagged as ours, so the wrapped pointer is napi-rs's `Box<WeatherService>`; `this`
    // is on the stack for the whole call, so the box cannot be finalized meanwhile.
    let service = unsafe { &*(wrapped as *const WeatherService) };
    let env = Env::from_raw(raw_env);
    let [session, second, third, fourth] = argv.map(|value| unsafe { Unknown::from_raw_unchecked(raw_env, value) });
    service.get_weather(&env, session, second, third, fourth).map(|promise| promise.raw())
}
