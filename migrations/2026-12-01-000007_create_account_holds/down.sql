DROP TABLE account_holds;
