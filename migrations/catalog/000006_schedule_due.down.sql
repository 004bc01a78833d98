DROP TABLE IF EXISTS schedule_due;
