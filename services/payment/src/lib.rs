//! The payment service: payments and refunds behind a provider port (card simulator built in).
