DROP TABLE IF EXISTS usage_storage;
DROP TABLE IF EXISTS usage_hours;
DROP TABLE IF EXISTS usage_minutes;
