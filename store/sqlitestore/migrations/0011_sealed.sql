-- The id of the key (package seal) that sealed an event's headers, query,
-- body and trace; '' for an event stored in clear. A sealed body is the
-- sealed value itself, sealed text columns hold it in base64.
ALTER TABLE events ADD COLUMN seal_key TEXT NOT NULL DEFAULT '';
