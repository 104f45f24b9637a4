-- The flood limit counts a sender's refused (and still unfinished)
-- callbacks in the last minute. The index over all of a sender's callbacks
-- made that count visit every accepted one too: with 2,000 callbacks from
-- one WeChat Pay address in the minute it cost 1.5 ms on SQLite, 45% of an
-- applied callback (docs/benchmarks.md). Only refused and unfinished rows
-- are indexed now, so the count is bounded by the limit itself. The
-- predicate is spelled exactly as the query's (store::payments).
DROP INDEX payment_callbacks_by_ip;
CREATE INDEX payment_callbacks_refused_by_ip ON payment_callbacks (ip, received_at)
    WHERE outcome = 'received' OR outcome LIKE 'refused%';
