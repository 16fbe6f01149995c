//! Refresh rotation and the other writes that must hold when many requests arrive at once.

mod races;
