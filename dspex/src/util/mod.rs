//! Small helpers every layer may use: the seeded random numbers of shuffling and sampling
//! ([`rng`]), RFC 3339 times ([`time`]) and the JSON form of variable values
//! ([`value_json`]).

#[doc(hidden)]
pub(crate) mod feature;
pub(crate) mod rng;
pub(crate) mod time;
pub(crate) mod value_json;
