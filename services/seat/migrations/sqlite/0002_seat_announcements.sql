-- When each seat was last announced (SeatDefined): seat re-announces seats whose announcement
-- is older than SEAT_CATALOGUE_REANNOUNCE_SECS, so the catalogue outlives the topic's retention.
-- NULL (seats from before this column) counts as never: they are announced at the next sweep.
ALTER TABLE seats ADD COLUMN announced_at INTEGER;
