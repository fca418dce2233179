-- The phases of an attempt's request as the HTTP client timed them, in
-- nanoseconds. trace_total_ns is NULL for an attempt that sent no request,
-- and for every attempt recorded before this step.
ALTER TABLE attempts ADD COLUMN trace_dns_ns INTEGER;
ALTER TABLE attempts ADD COLUMN trace_connect_ns INTEGER;
ALTER TABLE attempts ADD COLUMN trace_tls_ns INTEGER;
ALTER TABLE attempts ADD COLUMN trace_first_byte_ns INTEGER;
ALTER TABLE attempts ADD COLUMN trace_total_ns INTEGER;
ALTER TABLE attempts ADD COLUMN trace_reused INTEGER;
