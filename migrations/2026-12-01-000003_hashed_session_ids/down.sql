-- Nothing to restore: the rows removed by up.sql could not be used by any version.
SELECT 1;
