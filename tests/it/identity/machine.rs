//! Machine callers: service accounts and client-credentials tokens.
