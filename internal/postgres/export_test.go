package postgres

// NotSuperseded exports notSuperseded to the external tests.
const NotSuperseded = notSuperseded
