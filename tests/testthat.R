library(testthat)
library(nbi)

# Run every test, keep the results even when some fail, and leave them where .ci/run
# reads them: testthat-results.csv in this directory (nbi.Rcheck/tests/ under R CMD check).
results <- test_check("nbi", stop_on_failure = FALSE)
df <- as.data.frame(results)
df$result <- NULL  # a list column of expectation objects; not CSV material
utils::write.csv(df, "testthat-results.csv", row.names = FALSE)
if (sum(df$failed) > 0 || any(df$error)) stop("Test failures", call. = FALSE)
