"""Actions: retry, redrive, ack, snooze, DLQ replay; permission policy; idempotency; audit."""
