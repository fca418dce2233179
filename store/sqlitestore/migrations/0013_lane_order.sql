-- A lane's deliveries go in the order they were accepted. created_at counts
-- milliseconds, and two deliveries of one lane accepted within the same one
-- were ordered by their ids, whose random part then decides. lane_seq is a
-- delivery's place in its lane: its creation, or one more than the place of
-- the lane's last delivery not final when that is not less (insertDelivery).
-- The deliveries stored before keep their order by creation and id.
ALTER TABLE deliveries ADD COLUMN lane_seq INTEGER;
UPDATE deliveries SET lane_seq = created_at WHERE lane IS NOT NULL;
DROP INDEX deliveries_lane;
CREATE INDEX deliveries_lane ON deliveries (action, lane, lane_seq, id)
    WHERE lane IS NOT NULL AND status IN ('pending', 'retrying');
