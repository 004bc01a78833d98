-- Fails on exactly one database of a test: the one whose name ends in d_07.
DO $$ BEGIN
    IF current_database() LIKE '%d_07' THEN RAISE EXCEPTION 'boom: % refuses this migration', current_database(); END IF;
END $$;
CREATE TABLE gadgets (id bigserial PRIMARY KEY, widget_id bigint REFERENCES widgets (id));
