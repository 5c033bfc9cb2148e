//! The proxy over real sockets (the engine behind it on a loopback OpenWeather).
