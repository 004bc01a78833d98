SELECT pg_sleep(0.05);
CREATE TABLE widgets (id bigserial PRIMARY KEY, name text NOT NULL);
