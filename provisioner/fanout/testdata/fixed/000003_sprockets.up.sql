CREATE TABLE sprockets (id bigserial PRIMARY KEY, teeth integer NOT NULL DEFAULT 12);
