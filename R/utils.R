# Argument checks shared by the exported functions; messages name the argument.

check_count <- function(x, arg, min = 0, max = Inf, where = "") {
  if (!is.numeric(x) || length(x) != 1 || !is.finite(x) || x != round(x) || x < min || x > max) {
    shown <- if (is.atomic(x) && length(x) == 1L) format(x) else sim_describe(x)
    stop(sprintf("%s`%s` must be a single whole number%s%s, not %s", where, arg,
                 if (min > -Inf) sprintf(" >= %s", format(min)) else "",
                 if (max < Inf) sprintf(" and <= %s", format(max)) else "", shown), call. = FALSE)
  }
  invisible(x)
}

check_number <- function(x, arg, lower = -Inf, upper = Inf, inclusive = TRUE) {
  ok <- is.numeric(x) && length(x) == 1 && is.finite(x) &&
    (if (inclusive) x >= lower && x <= upper else x > lower && x < upper)
  if (!ok)
    stop(sprintf("`%s` must be a finite number in %s%s, %s%s", arg, if (inclusive) "[" else "(",
                 format(lower), format(upper), if (inclusive) "]" else ")"), call. = FALSE)
  invisible(x)
}

check_flag <- function(x, arg) {
  if (!is.logical(x) || length(x) != 1 || is.na(x))
    stop(sprintf("`%s` must be TRUE or FALSE", arg), call. = FALSE)
  invisible(x)
}

# The session's random number state (NULL when none exists yet) and its restoration: code
# that must not disturb the user's stream takes the state before and puts it back after.
rng_state <- function() get0(".Random.seed", envir = globalenv(), inherits = FALSE)
rng_restore <- function(old) {
  if (is.null(old)) {
    if (exists(".Random.seed", envir = globalenv(), inherits = FALSE))
      rm(".Random.seed", envir = globalenv())
  } else {
    assign(".Random.seed", old, envir = globalenv())
  }
}

# Evaluates `expr` and leaves the session's random number state as it was.
with_rng_preserved <- function(expr) {
  old <- rng_state()
  on.exit(rng_restore(old), add = TRUE)
  force(expr)
}

# Evaluate `code` with the RNG seeded, restoring the session's RNG state afterwards.
with_seed <- function(seed, code) {
  kind <- RNGkind()  # code may switch kinds (simulations use L'Ecuyer-CMRG streams)
  old <- rng_state()
  on.exit({
    RNGkind(kind[1], kind[2], kind[3])
    rng_restore(old)
  })
  set.seed(seed)
  code
}

# A 52-bit seed for the C core, drawn from the session's RNG (so set.seed() reproduces it).
draw_seed <- function(seed = NULL) {
  if (!is.null(seed)) {
    check_count(seed, "seed", min = 0)
    return(with_seed(seed, draw_seed()))
  }
  floor(stats::runif(1) * 2^26) * 2^26 + floor(stats::runif(1) * 2^26)
}

default_threads <- function(threads = NULL) {
  if (is.null(threads)) threads <- getOption("nbi.threads", 1L)
  check_count(threads, "threads", min = 1, max = 1024)
  as.integer(threads)
}

# Evaluates `expr` with the BLAS limited to `threads` threads, restored afterwards (also
# after an error or an interrupt): nbi's OpenMP threads and a threaded BLAS (OpenBLAS,
# FlexiBLAS) then never ask for more cores than `threads` between them. The C core spreads
# its own products in panels over its threads (thread-count-independent results), so its
# .Calls run with the BLAS on one thread.
with_blas_threads <- function(threads, expr) {
  old <- .Call(C_r_blas_threads, as.integer(threads))
  if (!is.na(old)) on.exit(.Call(C_r_blas_threads, old), add = TRUE)
  expr
}

# `...` of an exported function must be empty: an unknown argument is an error naming it.
check_dots <- function(dots, fun) {
  if (!length(dots)) return(invisible())
  nm <- names(dots)
  if (is.null(nm)) nm <- rep("", length(dots))
  nm[nm == ""] <- "<unnamed>"
  stop(sprintf("unknown argument%s to %s(): %s", if (length(dots) > 1) "s" else "", fun,
               paste0("`", nm, "`", collapse = ", ")), call. = FALSE)
}
