library(testthat)
library(nbi)

# Run every test twice: with the networks' matrix products in float64 (the default), then
# with options(nbi.precision = "float32") (engines created by nbi_engine() then compute in
# float32; gradient checks and layer tests build float64 models directly, so they repeat
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
