DROP TABLE IF EXISTS migration_results;
DROP TABLE IF EXISTS migration_runs;
