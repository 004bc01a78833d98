DROP TABLE IF EXISTS usage_charges;
