library(testthat)
library(nbi)

# Run every test twice: with options(nbi.precision = "float64") (engines created by
# nbi_engine() then compute their products in float64, the option), then in float32 (the
# default since 0.3.0; gradient checks and layer tests build float64 models directly, so they repeat
# unchanged). Keep the results even when some fail, and leave them where .ci/run reads
# them: testthat-results.csv in this directory (nbi.Rcheck/tests/ under R CMD check).
run <- function(precision) {
  old <- options(nbi.precision = precision)
  on.exit(options(old))
  df <- as.data.frame(test_check("nbi", stop_on_failure = FALSE))
  df$result <- NULL  # a list column of expectation objects; not CSV material
  df$precision <- rep(precision, nrow(df))
  df
}
df <- rbind(run("float64"), run("float32"))
utils::write.csv(df, "testthat-results.csv", row.names = FALSE)
if (sum(df$failed) > 0 || any(df$error)) stop("Test failures", call. = FALSE)
