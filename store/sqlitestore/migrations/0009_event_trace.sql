-- Why an event did what it did (store.EventTrace, as store.AppendTrace
-- writes it; '' for events stored before this step), the later arrivals
-- answered as its duplicates (how many, and the unix milliseconds of the
-- last few, space-separated), and what each attempt decided for its
-- delivery and why.
ALTER TABLE events ADD COLUMN trace TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN duplicates INTEGER NOT NULL DEFAULT 0;
ALTER TABLE events ADD COLUMN duplicate_arrivals TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN outcome TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE attempts ADD COLUMN next_attempt_at INTEGER NOT NULL DEFAULT 0;
