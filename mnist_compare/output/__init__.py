"""What comes out: the table and check table, results files' contents, the verdict in words, plots."""
