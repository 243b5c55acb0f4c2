-- What the richer status changes carry: the time the change was decided
-- (older rows read the HLC time they were stamped with), what set the
-- status, flapping, inhibition and the incident it proposed.
--
-- `{all}` runs the statement on every table holding the name: the local
-- table, and in the sharded layout the Distributed table over it too.
-- ClickHouse 18.16 has no `ADD COLUMN IF NOT EXISTS`; the migration runner
-- takes "column already exists" as done, so a run interrupted between a
-- statement and its record finishes on the next start.

ALTER TABLE {db}.status_changes{all} ADD COLUMN at_ms UInt64 DEFAULT changed_at_ms;
ALTER TABLE {db}.status_changes{all} ADD COLUMN source String;
ALTER TABLE {db}.status_changes{all} ADD COLUMN flapping UInt8;
ALTER TABLE {db}.status_changes{all} ADD COLUMN inhibited String;
ALTER TABLE {db}.status_changes{all} ADD COLUMN proposal String;
