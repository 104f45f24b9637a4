//! OCSP (to be written).
