//! Deployment guides, tested: the real host proxies from `examples/` in front of Portcullis.

mod caddy;
mod nginx;
