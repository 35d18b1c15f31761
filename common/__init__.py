"""What every stage shares and no stage teaches: ids, models, errors, security, backends, runner, harness."""
