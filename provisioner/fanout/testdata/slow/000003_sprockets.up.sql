SELECT pg_sleep(0.05);
CREATE TABLE sprockets (id bigserial PRIMARY KEY, teeth integer NOT NULL DEFAULT 12);
