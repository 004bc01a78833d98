SELECT pg_sleep(0.05);
CREATE TABLE gadgets (id bigserial PRIMARY KEY, widget_id bigint REFERENCES widgets (id));
