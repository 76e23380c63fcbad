package main

import "time"

// The contract's defaults, kept in one place.
const (
	defaultHeartbeat   = 15 * time.Second
	defaultConnTimeout = 60 * time.Second
	defaultCleanup     = 30 * time.Second
	defaultPoll        = 5 * time.Second
)
