"""The gate: criteria judged against results files, and the before/after comparison."""
