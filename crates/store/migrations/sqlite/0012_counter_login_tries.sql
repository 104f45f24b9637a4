-- Counter password tries (issue 14). A try is counted before the password
-- is checked (outcome 'pending'), under the username's lock, so concurrent
-- tries cannot all reach the check; the check's verdict is written after.
-- The limits (domain::operator::CounterLoginLimits) are judged from these
-- rows: per (username, ip), per username from everywhere, per ip. Rows
-- older than a day are pruned as new tries come in. Outcomes: pending,
-- wrong, right (password right, SMS code to come), refused, logged_in (a
-- completed login, which ends a run of failures).
CREATE TABLE counter_login_tries (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    username  TEXT    NOT NULL,
    ip        TEXT,
    at        BIGINT  NOT NULL,
    outcome   TEXT    NOT NULL
);
CREATE INDEX counter_login_tries_by_user ON counter_login_tries (username, at);
CREATE INDEX counter_login_tries_by_ip ON counter_login_tries (ip, at);
CREATE INDEX counter_login_tries_at ON counter_login_tries (at);

-- One phone per operator: the login code goes to it, and the
-- own-order rule (no review of the account with one's own phone) relies
-- on a phone naming one person.
CREATE UNIQUE INDEX operators_phone_unique ON operators (phone);
