// Package faults holds bilibridge's fault-injection suite: each test runs
// the real bridge against the fake Bilibili (bilitest) and a local webhook
// receiver that verifies signatures, then injects one kind of fault (a
// SIGKILLed bridge process, a restarted NATS server, a webhook endpoint
// that is down, Bilibili answering errors) and reports messages sent,
// delivered, lost and duplicated. TestRandomFaults mixes every kind at
// moments drawn from a seed, against two bridge processes sharing one
// NATS (-seeds N adds random seeds). The figures are in
// docs/reliability.md.
//
// The package has no code of its own; everything is in its tests.
package faults
