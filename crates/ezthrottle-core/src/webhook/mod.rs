//! Webhook signatures (being written).
