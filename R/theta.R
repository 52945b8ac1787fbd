# Parameter sets as every function takes them: one coercion, with messages that name the
# argument (and the function, for the prior's methods).

# `theta` (an n x d numeric matrix, a data frame, or one parameter vector of length d) as an
# n x d double matrix with the columns `names`, in their order. Named columns must be exactly
# the parameters (in any order); unnamed ones are taken in order. `where` prefixes messages
# (e.g. "log_prior(): "); `finite = TRUE` rejects infinite values as well as NA.
as_theta <- function(theta, names, arg = "theta", where = "", finite = TRUE) {
  d <- length(names)
  lab <- paste0(where, if (grepl("^[A-Za-z_.][A-Za-z0-9_.]*$", arg)) sprintf("`%s`", arg) else arg)
  fail <- function(...) stop(paste0(lab, " ", ...), call. = FALSE)
  if (is.data.frame(theta)) {
    ok <- vapply(theta, function(col) is.numeric(col) || is.logical(col), logical(1))
    if (!all(ok)) fail("has non-numeric column(s): ", paste0("`", names(theta)[!ok], "`", collapse = ", "))
    theta <- as.matrix(theta)
  }
  if (!is.numeric(theta) && !(is.logical(theta) && all(is.na(theta))))
    fail(sprintf("must be a numeric matrix with %d column(s) (%s), a length-%d vector or a data frame, not %s",
                 d, paste(names, collapse = ", "), d, sim_describe(theta)))
  if (!is.matrix(theta)) {
    if (length(theta) == d) {
      theta <- matrix(theta, nrow = 1L, dimnames = list(NULL, names(theta)))
    } else if (d == 1L) {
      theta <- matrix(theta, ncol = 1L)
    } else {
      fail(sprintf("is a vector of length %d but the prior has %d parameters (%s); pass a length-%d vector or an n x %d matrix",
                   length(theta), d, paste(names, collapse = ", "), d, d))
    }
  }
  if (nrow(theta) < 1L) fail("has no rows")
  cn <- colnames(theta)
  if (!is.null(cn) && any(nzchar(cn) & !is.na(cn))) {
    if (!setequal(cn, names) || anyDuplicated(cn) || ncol(theta) != d)
      fail(sprintf("has columns (%s) that do not match the prior's parameters (%s)",
                   paste(cn, collapse = ", "), paste(names, collapse = ", ")))
    theta <- theta[, names, drop = FALSE]
  } else if (ncol(theta) != d) {
    fail(sprintf("has %d unnamed column%s but the prior has %d parameter%s (%s)", ncol(theta),
                 if (ncol(theta) == 1L) "" else "s", d, if (d == 1L) "" else "s",
                 paste(names, collapse = ", ")))
  }
  if (anyNA(theta)) fail(sprintf("contains missing values (NA or NaN; first in row %d)",
                                 which(rowSums(is.na(theta)) > 0)[1L]))
  if (finite && any(is.infinite(theta)))
    fail(sprintf("contains infinite values (first in row %d)",
                 which(rowSums(is.infinite(theta)) > 0)[1L]))
  storage.mode(theta) <- "double"
  dimnames(theta) <- list(NULL, names)
  theta
}

# theta as an n x d matrix in the prior's column order.
check_theta <- function(prior, theta, arg) as_theta(theta, prior$names, arg)
