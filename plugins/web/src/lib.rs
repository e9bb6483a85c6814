//! Web metric provider: an HTTP request whose JSON response is evaluated.
