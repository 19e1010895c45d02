"""The pure core: event values, canonical form, hashing, verification, validation. No I/O here."""
