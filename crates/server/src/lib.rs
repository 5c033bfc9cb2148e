//! weather-cache-server: the drone proxy over weather-cache-core, as a library (`proxy`), its
//! command line (`cli`: one parser for the `weather-cache-server` binary and `npx weather-cache
//! serve`) and the running server (`serve`: events as JSON lines, shutdown and reload).

pub mod cli;
pub mod proxy;
pub mod serve;
