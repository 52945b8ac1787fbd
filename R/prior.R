# Prior distributions for nbi.
#
# A prior is built from "components": one-dimensional marginals (possibly
# vectorised into a block of k independent marginals, class "nbi_marginal")
# and joint blocks given by user closures (class "nbi_custom"). Both carry the
# common class "nbi_component". nbi_prior() combines named components into an
# object of class "nbi_prior" with fields
#   names       character(d) parameter names
#   dim         d
#   lower/upper numeric(d) support bounds (-Inf/Inf where unbounded)
#   components  list of components, each with extra fields
#               `cols` (integer column indices it owns), `param_names`
#               (its parameter names) and `label` (the argument name).

# ---------------------------------------------------------------------------
# small internal helpers
# ---------------------------------------------------------------------------

# Stop with a message, without the call.
prior_abort <- function(...) {
  stop(paste0(...), call. = FALSE)
}

# Format numbers compactly (3 significant digits) for messages and printing.
prior_fmt <- function(x) {
  vapply(x, function(v) format(v, digits = 3), character(1), USE.NAMES = FALSE)
}

# Format a parameter vector: a scalar, or c(a, b, ...) when k > 1.
prior_fmt_vec <- function(x) {
  s <- prior_fmt(x)
  if (length(s) == 1L) s else paste0("c(", paste(s, collapse = ", "), ")")
}

# Describe the type of an object for error messages.
prior_type_of <- function(x) {
  if (is.null(x)) return("NULL")
  cl <- class(x)
  paste0("an object of class ", paste0("\"", cl[1L], "\""))
}

# Validate a numeric parameter vector. `finite = FALSE` allows +-Inf (but
# never NA/NaN).
prior_check_num <- function(x, arg, fn, finite = TRUE) {
  if (!is.numeric(x) || length(x) == 0L) {
    prior_abort(fn, ": `", arg, "` must be a non-empty numeric vector (got ",
                prior_type_of(x), ").")
  }
  if (anyNA(x)) {
    prior_abort(fn, ": `", arg, "` must not contain NA or NaN.")
  }
  if (finite && !all(is.finite(x))) {
    prior_abort(fn, ": `", arg, "` must contain finite numbers only (got ",
                prior_fmt_vec(x), ").")
  }
  invisible(x)
}

# Recycle a named list of parameter vectors to a common length k. Each must
# have length 1 or k.
prior_recycle <- function(args, fn) {
  lens <- lengths(args)
  k <- max(lens)
  bad <- lens != 1L & lens != k
  if (any(bad)) {
    prior_abort(fn, ": ", paste0("`", names(args), "`", collapse = ", "),
                " must have equal lengths (or length 1); got lengths ",
                paste(lens, collapse = ", "), ".")
  }
  lapply(args, function(a) {
    out <- rep_len(as.numeric(a), k)
    out
  })
}

# The first non-NULL names() among the raw arguments (used to name the
# columns of a k-dimensional marginal block).
prior_arg_names <- function(args, k) {
  for (a in args) {
    nm <- names(a)
    if (!is.null(nm) && length(nm) == k && !anyNA(nm) && all(nzchar(nm))) {
      return(nm)
    }
  }
  NULL
}

# n x k matrix whose column j is v[j].
prior_colmat <- function(v, n) {
  matrix(rep(v, each = n), nrow = n, ncol = length(v))
}

# Constructor shared by all marginal families.
new_nbi_marginal <- function(family, params, lower, upper, sample,
                             log_density, names = NULL) {
  structure(
    list(
      family = family,
      params = params,
      k = length(lower),
      lower = as.numeric(lower),
      upper = as.numeric(upper),
      names = names,
      sample = sample,
      log_density = log_density
    ),
    class = c("nbi_marginal", "nbi_component")
  )
}

# ---------------------------------------------------------------------------
# truncated normal helpers (standardised scale, numerically stable tails)
# ---------------------------------------------------------------------------

# log(Phi(b) - Phi(a)) for a < b (vectorised).
prior_log_norm_mass <- function(a, b) {
  out <- numeric(length(a))
  for (j in seq_along(a)) {
    aj <- a[j]
    bj <- b[j]
    if (aj >= 0) {
      # both bounds in the upper tail: use survival functions
      la <- stats::pnorm(aj, lower.tail = FALSE, log.p = TRUE)
      lb <- stats::pnorm(bj, lower.tail = FALSE, log.p = TRUE)
      out[j] <- la + log1p(-exp(lb - la))
    } else if (bj <= 0) {
      # both in the lower tail: use the distribution function
      la <- stats::pnorm(aj, log.p = TRUE)
      lb <- stats::pnorm(bj, log.p = TRUE)
      out[j] <- lb + log1p(-exp(la - lb))
    } else {
      out[j] <- log(stats::pnorm(bj) - stats::pnorm(aj))
    }
  }
  out
}

# Inverse-CDF draw from the standard normal truncated to [a, b] (scalars),
# given uniforms u.
prior_rtruncnorm_std <- function(u, a, b) {
  if (a >= 0) {
    la <- stats::pnorm(a, lower.tail = FALSE, log.p = TRUE)
    lb <- stats::pnorm(b, lower.tail = FALSE, log.p = TRUE)
    r <- exp(lb - la) # Q(b) / Q(a) in [0, 1)
    lq <- la + log1p(-u * (1 - r)) # log Q(x)
    x <- stats::qnorm(lq, lower.tail = FALSE, log.p = TRUE)
  } else if (b <= 0) {
    # mirror into the upper tail
    x <- -prior_rtruncnorm_std(u, -b, -a)
  } else {
    pa <- stats::pnorm(a)
    pb <- stats::pnorm(b)
    x <- stats::qnorm(pa + u * (pb - pa))
  }
  pmin(pmax(x, a), b)
}

# ---------------------------------------------------------------------------
# marginal constructors
# ---------------------------------------------------------------------------

#' Prior distributions for individual parameters
#'
#' @description
#' Constructors for one-dimensional prior marginals, to be combined into a
#' joint prior with [nbi_prior()]:
#'
#' * `prior_uniform(lower, upper)`: uniform on \[`lower`, `upper`\].
#' * `prior_loguniform(lower, upper)`: log-uniform (density
#'   \eqn{1 / (x \log(upper/lower))}) on \[`lower`, `upper`\], `lower > 0`.
#' * `prior_normal(mean, sd)`: normal.
#' * `prior_lognormal(meanlog, sdlog)`: log-normal (`log(x)` is normal).
#' * `prior_truncnormal(mean, sd, lower, upper)`: normal truncated to
#'   \[`lower`, `upper`\]; sampled by inverse CDF in a way that is stable far
#'   into the tails (e.g. `prior_truncnormal(0, 1, 8, 10)`).
#'
#' Vector arguments of equal length `k` (length-1 arguments are recycled)
#' give a block of `k` independent marginals. Inside [nbi_prior()] such a
#' block named `x` gives parameters `x1`, ..., `xk`, or the names of the first
#' named argument vector (e.g. `names(lower)`) if present.
#'
#' All random numbers come from R's random number generator, so
#' [set.seed()] makes draws reproducible.
#'
#' @param lower,upper Numeric vectors: lower and upper bounds of the support.
#'   Finite for `prior_uniform()` and `prior_loguniform()` (where `lower` must
#'   be positive); may be `-Inf`/`Inf` for `prior_truncnormal()`. Must satisfy
#'   `lower < upper` elementwise.
#' @param mean,sd Numeric vectors: mean and standard deviation (`sd > 0`) of
#'   the (untruncated) normal distribution.
#' @param meanlog,sdlog Numeric vectors: mean and standard deviation
#'   (`sdlog > 0`) of the distribution on the log scale.
#' @return An object of class `"nbi_marginal"` (and `"nbi_component"`): a list
#'   with the distribution `family`, its `params`, the block dimension `k`,
#'   support bounds `lower` and `upper`, and closures `sample(n)` (returning
#'   an `n x k` matrix) and `log_density(theta)` (taking an `n x k` matrix and
#'   returning `n` log densities, summed over the `k` columns).
#' @seealso [nbi_prior()], [prior_custom()], [sample_prior()], [log_prior()]
#' @examples
#' prior_uniform(0, 2 * pi)
#' prior_loguniform(0.1, 100)
#' prior_normal(c(0, 1), c(1, 2))
#' prior_lognormal(0, 0.5)
#' prior_truncnormal(0, 1, lower = 0, upper = Inf)
#' set.seed(1)
#' sample_prior(prior_truncnormal(0, 1, 8, 10), 3)
#' @rdname priors
#' @export
prior_uniform <- function(lower, upper) {
  fn <- "prior_uniform()"
  b <- prior_bounds(fn, lower, upper)
  lower <- b$lower
  upper <- b$upper
  nms <- b$names
  if (any(lower >= upper)) {
    prior_abort(fn, ": `lower` must be less than `upper` (got lower = ",
                prior_fmt_vec(lower), ", upper = ", prior_fmt_vec(upper), ").")
  }
  k <- length(lower)
  log_width <- log(upper - lower)
  sample <- function(n) {
    x <- stats::runif(n * k, rep(lower, each = n), rep(upper, each = n))
    matrix(x, nrow = n, ncol = k)
  }
  log_density <- function(theta) {
    n <- nrow(theta)
    inside <- theta >= prior_colmat(lower, n) & theta <= prior_colmat(upper, n)
    val <- prior_colmat(-log_width, n)
    val[!inside] <- -Inf
    rowSums(val)
  }
  new_nbi_marginal("uniform", list(lower = lower, upper = upper),
                   lower, upper, sample, log_density, nms)
}

#' @rdname priors
#' @export
prior_loguniform <- function(lower, upper) {
  fn <- "prior_loguniform()"
  b <- prior_bounds(fn, lower, upper)
  lower <- b$lower
  upper <- b$upper
  nms <- b$names
  if (any(lower <= 0)) {
    prior_abort(fn, ": `lower` must be positive for a log-uniform prior (got ",
                prior_fmt_vec(lower), ").")
  }
  if (any(lower >= upper)) {
    prior_abort(fn, ": `lower` must be less than `upper` (got lower = ",
                prior_fmt_vec(lower), ", upper = ", prior_fmt_vec(upper), ").")
  }
  k <- length(lower)
  log_norm <- log(log(upper / lower))
  sample <- function(n) {
    x <- exp(stats::runif(n * k, rep(log(lower), each = n),
                          rep(log(upper), each = n)))
    x <- pmin(pmax(x, rep(lower, each = n)), rep(upper, each = n))
    matrix(x, nrow = n, ncol = k)
  }
  log_density <- function(theta) {
    n <- nrow(theta)
    inside <- theta >= prior_colmat(lower, n) & theta <= prior_colmat(upper, n)
    val <- matrix(-Inf, nrow = n, ncol = k)
    val[inside] <- -log(theta[inside]) - prior_colmat(log_norm, n)[inside]
    rowSums(val)
  }
  new_nbi_marginal("loguniform", list(lower = lower, upper = upper),
                   lower, upper, sample, log_density, nms)
}

#' @rdname priors
#' @export
prior_normal <- function(mean, sd) {
  prior_location_scale("prior_normal()", "normal", list(mean = mean, sd = sd), stats::rnorm,
                       stats::dnorm, lower = -Inf)
}

#' @rdname priors
#' @export
prior_lognormal <- function(meanlog, sdlog) {
  prior_location_scale("prior_lognormal()", "lognormal", list(meanlog = meanlog, sdlog = sdlog),
                       stats::rlnorm, stats::dlnorm, lower = 0)
}

# The checked, recycled bounds of a uniform-type family, and the parameters' names.
prior_bounds <- function(fn, lower, upper) {
  prior_check_num(lower, "lower", fn)
  prior_check_num(upper, "upper", fn)
  nms <- prior_arg_names(list(lower, upper), max(length(lower), length(upper)))
  p <- prior_recycle(list(lower = lower, upper = upper), fn)
  list(lower = p$lower, upper = p$upper, names = nms)
}

# A family with a location and a positive scale (args: a named list of the two, recycled to
# one length): draws by rdist(n, loc, scale), log density by ddist(x, loc, scale, log = TRUE)
# on the support (lower, Inf), -Inf elsewhere.
prior_location_scale <- function(fn, family, args, rdist, ddist, lower) {
  an <- names(args)
  prior_check_num(args[[1]], an[1], fn)
  prior_check_num(args[[2]], an[2], fn)
  if (any(args[[2]] <= 0)) {
    prior_abort(fn, ": `", an[2], "` must be positive (got ", prior_fmt_vec(args[[2]]), ").")
  }
  nms <- prior_arg_names(unname(args), max(lengths(args)))
  p <- prior_recycle(args, fn)
  loc <- p[[1]]
  scale <- p[[2]]
  k <- length(loc)
  sample <- function(n) {
    x <- rdist(n * k, rep(loc, each = n), rep(scale, each = n))
    matrix(x, nrow = n, ncol = k)
  }
  log_density <- function(theta) {
    n <- nrow(theta)
    val <- matrix(-Inf, nrow = n, ncol = k)
    inside <- theta > lower
    val[inside] <- ddist(theta[inside], prior_colmat(loc, n)[inside],
                         prior_colmat(scale, n)[inside], log = TRUE)
    rowSums(val)
  }
  new_nbi_marginal(family, p, rep(lower, k), rep(Inf, k), sample, log_density, nms)
}

#' @rdname priors
#' @export
prior_truncnormal <- function(mean, sd, lower = -Inf, upper = Inf) {
  fn <- "prior_truncnormal()"
  prior_check_num(mean, "mean", fn)
  prior_check_num(sd, "sd", fn)
  prior_check_num(lower, "lower", fn, finite = FALSE)
  prior_check_num(upper, "upper", fn, finite = FALSE)
  if (any(sd <= 0)) {
    prior_abort(fn, ": `sd` must be positive (got ", prior_fmt_vec(sd), ").")
  }
  nms <- prior_arg_names(list(mean, sd, lower, upper),
                         max(length(mean), length(sd), length(lower),
                             length(upper)))
  p <- prior_recycle(list(mean = mean, sd = sd, lower = lower, upper = upper),
                     fn)
  mean <- p$mean
  sd <- p$sd
  lower <- p$lower
  upper <- p$upper
  if (any(lower >= upper)) {
    prior_abort(fn, ": `lower` must be less than `upper` (got lower = ",
                prior_fmt_vec(lower), ", upper = ", prior_fmt_vec(upper), ").")
  }
  if (any(lower == Inf) || any(upper == -Inf)) {
    prior_abort(fn, ": the truncation interval [`lower`, `upper`] must have ",
                "positive length on the real line.")
  }
  k <- length(mean)
  a <- (lower - mean) / sd
  b <- (upper - mean) / sd
  log_mass <- prior_log_norm_mass(a, b)
  if (any(!is.finite(log_mass))) {
    prior_abort(fn, ": the truncation interval has numerically zero ",
                "probability under normal(mean, sd).")
  }
  sample <- function(n) {
    u <- matrix(stats::runif(n * k), nrow = n, ncol = k)
    out <- matrix(0, nrow = n, ncol = k)
    for (j in seq_len(k)) {
      z <- prior_rtruncnorm_std(u[, j], a[j], b[j])
      out[, j] <- pmin(pmax(mean[j] + sd[j] * z, lower[j]), upper[j])
    }
    out
  }
  log_density <- function(theta) {
    n <- nrow(theta)
    inside <- theta >= prior_colmat(lower, n) & theta <= prior_colmat(upper, n)
    val <- matrix(-Inf, nrow = n, ncol = k)
    val[inside] <- stats::dnorm(theta[inside], prior_colmat(mean, n)[inside],
                                prior_colmat(sd, n)[inside], log = TRUE) -
      prior_colmat(log_mass, n)[inside]
    rowSums(val)
  }
  new_nbi_marginal("truncnormal",
                   list(mean = mean, sd = sd, lower = lower, upper = upper),
                   lower, upper, sample, log_density, nms)
}

# ---------------------------------------------------------------------------
# custom joint blocks
# ---------------------------------------------------------------------------

#' A custom joint prior block given by R functions
#'
#' @description
#' Defines a (possibly correlated) prior over `dim` parameters through two
#' closures: one that draws samples and one that evaluates the joint log
#' density. Combine it with other components in [nbi_prior()].
#'
#' At construction the closures are called once on two draws (without
#' disturbing the random number stream) to check that they return the right
#' shapes; column names returned by `sample()` become the parameter names
#' inside [nbi_prior()] (otherwise a block named `z` of dimension `k` gives
#' `z1`, ..., `zk`, or `z` when `k = 1`).
#'
#' @param sample A function of `n` returning an `n x dim` numeric matrix of
#'   prior draws (a length-`n` vector is accepted when `dim = 1`).
#' @param log_density A function taking an `n x dim` numeric matrix and
#'   returning `n` joint log densities (`-Inf` outside the support). `NA` or
#'   `NaN` values are treated as `-Inf`.
#' @param dim A positive integer: the number of parameters in the block.
#' @param lower,upper Numeric support bounds, recycled to length `dim`
#'   (default unbounded). Points outside these bounds have log density
#'   `-Inf`; the bounds are also used to clip proposals.
#' @return An object of class `"nbi_custom"` (and `"nbi_component"`): a list
#'   with `family = "custom"`, `k = dim`, `lower`, `upper`, the column
#'   `names` returned by `sample()` (or `NULL`), and validated closures
#'   `sample(n)` and `log_density(theta)`.
#' @seealso [nbi_prior()], [prior_uniform()]
#' @examples
#' # a correlated bivariate normal
#' S <- matrix(c(1, 0.8, 0.8, 1), 2)
#' R <- chol(S)
#' Si <- solve(S)
#' mvn <- prior_custom(
#'   sample = function(n) matrix(stats::rnorm(2 * n), n) %*% R,
#'   log_density = function(theta) {
#'     -0.5 * rowSums((theta %*% Si) * theta) - log(2 * pi) -
#'       0.5 * log(det(S))
#'   },
#'   dim = 2
#' )
#' p <- nbi_prior(z = mvn, s = prior_uniform(0, 1))
#' x <- sample_prior(p, 5)
#' log_prior(p, x)
#' @export
prior_custom <- function(sample, log_density, dim, lower = -Inf, upper = Inf) {
  fn <- "prior_custom()"
  if (!is.function(sample)) {
    prior_abort(fn, ": `sample` must be a function of n returning an ",
                "n x dim matrix (got ", prior_type_of(sample), ").")
  }
  if (!is.function(log_density)) {
    prior_abort(fn, ": `log_density` must be a function of an n x dim matrix ",
                "returning n log densities (got ", prior_type_of(log_density),
                ").")
  }
  if (missing(dim) || !is.numeric(dim) || length(dim) != 1L || is.na(dim) ||
      !is.finite(dim) || dim < 1 || dim != round(dim)) {
    prior_abort(fn, ": `dim` must be a positive integer",
                if (!missing(dim) && is.numeric(dim) && length(dim) == 1L)
                  paste0(" (got ", prior_fmt(dim), ")"),
                ".")
  }
  dim <- as.integer(dim)
  prior_check_num(lower, "lower", fn, finite = FALSE)
  prior_check_num(upper, "upper", fn, finite = FALSE)
  if (!(length(lower) %in% c(1L, dim))) {
    prior_abort(fn, ": `lower` must have length 1 or `dim` (", dim, ").")
  }
  if (!(length(upper) %in% c(1L, dim))) {
    prior_abort(fn, ": `upper` must have length 1 or `dim` (", dim, ").")
  }
  lower <- rep_len(as.numeric(lower), dim)
  upper <- rep_len(as.numeric(upper), dim)
  if (any(lower >= upper)) {
    prior_abort(fn, ": `lower` must be less than `upper` (got lower = ",
                prior_fmt_vec(lower), ", upper = ", prior_fmt_vec(upper), ").")
  }
  user_sample <- sample
  user_log_density <- log_density

  wrapped_sample <- function(n) {
    x <- user_sample(n)
    if (is.data.frame(x)) x <- as.matrix(x)
    if (!is.matrix(x) && is.numeric(x) && dim == 1L && length(x) == n) {
      x <- matrix(x, ncol = 1L)
    }
    if (!is.matrix(x) || !is.numeric(x) || nrow(x) != n || ncol(x) != dim) {
      shape <- if (is.matrix(x)) {
        paste0("a ", nrow(x), " x ", ncol(x), " ", typeof(x), " matrix")
      } else {
        prior_type_of(x)
      }
      prior_abort("prior_custom: `sample(", n, ")` returned ", shape,
                  "; expected a numeric ", n, " x ", dim, " matrix.")
    }
    storage.mode(x) <- "double"
    x
  }
  wrapped_log_density <- function(theta) {
    n <- nrow(theta)
    ld <- user_log_density(theta)
    if (!is.numeric(ld) || length(ld) != n) {
      prior_abort("prior_custom: `log_density()` of a ", n, " x ", dim,
                  " matrix returned ", length(ld), " value(s) of type ",
                  typeof(ld), "; expected ", n, " numbers.")
    }
    ld <- as.numeric(ld)
    ld[is.na(ld)] <- -Inf
    ld
  }

  # probe once (without touching the user's RNG stream) to validate shapes
  # and pick up column names
  probe <- tryCatch(
    with_rng_preserved({
      x <- wrapped_sample(2L)
      ld <- wrapped_log_density(x)
      list(x = x, ld = ld)
    }),
    error = function(e) {
      prior_abort(fn, ": checking the closures on two draws failed: ",
                  conditionMessage(e))
    }
  )
  nms <- colnames(probe$x)
  if (!is.null(nms) && (anyNA(nms) || !all(nzchar(nms)))) nms <- NULL

  structure(
    list(
      family = "custom",
      params = list(dim = dim),
      k = dim,
      lower = lower,
      upper = upper,
      names = nms,
      sample = wrapped_sample,
      log_density = wrapped_log_density
    ),
    class = c("nbi_custom", "nbi_component")
  )
}

# ---------------------------------------------------------------------------
# the joint prior
# ---------------------------------------------------------------------------

#' Combine prior components into a joint prior
#'
#' @description
#' Builds the joint prior used throughout nbi from independent components:
#' marginals such as [prior_uniform()] and joint blocks from
#' [prior_custom()]. Parameters are named by the argument names: a
#' one-dimensional component `A = prior_uniform(-4, 4)` gives parameter `A`;
#' a block of dimension `k` named `z` gives `z1`, ..., `zk` (unless the block
#' supplies its own names, e.g. via `names(lower)` or column names returned
#' by a custom `sample()`).
#'
#' @param ... Named prior components. Every argument must be named.
#' @param x An `nbi_prior` or `nbi_marginal` object (print methods).
#' @return An object of class `"nbi_prior"`: a list with
#'   * `names`: character vector of the `d` parameter names;
#'   * `dim`: the number of parameters `d`;
#'   * `lower`, `upper`: named numeric vectors of length `d` with the support
#'     bounds (`-Inf`/`Inf` where unbounded);
#'   * `components`: list of the components (named by argument), each with
#'     extra fields `cols` (the columns of `theta` it owns), `param_names` and
#'     `label`.
#'
#'   The print methods return `x` invisibly.
#' @seealso [sample_prior()], [log_prior()], [prior_uniform()],
#'   [prior_custom()]
#' @examples
#' p <- nbi_prior(phi = prior_uniform(0, 2 * pi), A = prior_uniform(-4, 4),
#'                s = prior_lognormal(0, 0.5))
#' p
#' set.seed(1)
#' th <- sample_prior(p, 3)
#' log_prior(p, th)
#' @export
nbi_prior <- function(...) {
  fn <- "nbi_prior()"
  args <- list(...)
  if (length(args) == 0L) {
    prior_abort(fn, ": no prior components given; use e.g. ",
                "nbi_prior(A = prior_uniform(0, 1)).")
  }
  arg_names <- names(args)
  if (is.null(arg_names)) arg_names <- rep("", length(args))
  arg_names[is.na(arg_names)] <- ""
  for (i in seq_along(args)) {
    if (!nzchar(arg_names[i])) {
      prior_abort(fn, ": argument ", i, " is unnamed; parameters are named ",
                  "by the argument names, so name every prior component, ",
                  "e.g. nbi_prior(A = prior_uniform(0, 1)).")
    }
  }
  for (i in seq_along(args)) {
    if (!inherits(args[[i]], "nbi_component")) {
      prior_abort(fn, ": argument `", arg_names[i], "` is not a prior ",
                  "component (got ", prior_type_of(args[[i]]), "); build it ",
                  "with prior_uniform(), prior_loguniform(), prior_normal(), ",
                  "prior_lognormal(), prior_truncnormal() or prior_custom().")
    }
  }
  dup_args <- unique(arg_names[duplicated(arg_names)])
  if (length(dup_args) > 0L) {
    prior_abort(fn, ": duplicate component name(s): ",
                paste0("`", dup_args, "`", collapse = ", "),
                "; every parameter needs a unique name.")
  }

  components <- vector("list", length(args))
  all_names <- character(0)
  lower <- numeric(0)
  upper <- numeric(0)
  pos <- 0L
  for (i in seq_along(args)) {
    comp <- args[[i]]
    k <- comp$k
    label <- arg_names[i]
    pn <- if (k == 1L) {
      label
    } else if (!is.null(comp$names) && length(comp$names) == k) {
      comp$names
    } else {
      paste0(label, seq_len(k))
    }
    comp$cols <- pos + seq_len(k)
    comp$param_names <- pn
    comp$label <- label
    components[[i]] <- comp
    all_names <- c(all_names, pn)
    lower <- c(lower, comp$lower)
    upper <- c(upper, comp$upper)
    pos <- pos + k
  }
  names(components) <- arg_names
  dup <- unique(all_names[duplicated(all_names)])
  if (length(dup) > 0L) {
    prior_abort(fn, ": duplicate parameter name(s): ",
                paste0("`", dup, "`", collapse = ", "),
                "; every parameter needs a unique name.")
  }
  names(lower) <- all_names
  names(upper) <- all_names
  structure(
    list(
      names = all_names,
      dim = length(all_names),
      lower = lower,
      upper = upper,
      components = components
    ),
    class = "nbi_prior"
  )
}

#' Coerce to an nbi_prior
#'
#' Returns `x` if it is an `nbi_prior`, turns a named list of components into
#' one, and errors (naming `arg`) otherwise.
#' @keywords internal
#' @noRd
as_nbi_prior <- function(x, arg = "prior") {
  if (inherits(x, "nbi_prior")) return(x)
  must_name <- paste0("`", arg, "` must be named: use nbi_prior(name = ",
                      "prior_uniform(...)) so that each parameter has a name")
  if (inherits(x, "nbi_component")) {
    stop(must_name, call. = FALSE)
  }
  if (is.list(x) && !is.object(x) && length(x) > 0L &&
      all(vapply(x, inherits, logical(1), what = "nbi_component"))) {
    nm <- names(x)
    if (is.null(nm) || anyNA(nm) || !all(nzchar(nm))) {
      stop(must_name, call. = FALSE)
    }
    return(do.call(nbi_prior, x))
  }
  stop("`", arg, "` must be an nbi_prior (see nbi_prior()), got ",
       prior_type_of(x), ".", call. = FALSE)
}

# A prior for sample_prior()/log_prior(): nbi_prior as is, a single component
# becomes a prior with parameter(s) "theta" (theta1..thetak).
prior_resolve <- function(prior) {
  if (inherits(prior, "nbi_prior")) return(prior)
  if (inherits(prior, "nbi_component")) return(nbi_prior(theta = prior))
  as_nbi_prior(prior, "prior")
}

# theta as an n x d double matrix in the prior's column order (R/theta.R); infinite values
# are allowed (their log density is -Inf).
prior_theta_matrix <- function(theta, prior, fn) {
  as_theta(theta, prior$names, "theta", where = paste0(fn, ": "), finite = FALSE)
}

# Rows of theta inside the box [lower, upper].
prior_in_box <- function(prior, theta) {
  n <- nrow(theta)
  if (n == 0L) return(logical(0))
  # column by column: no n x d bound matrices (predict() checks millions of draws); NaN is
  # outside, and a column without bounds only needs that check
  ok <- rep(TRUE, n)
  for (j in seq_len(ncol(theta))) {
    x <- theta[, j]
    lo <- prior$lower[j]
    hi <- prior$upper[j]
    ok <- ok & !is.na(x)
    if (lo > -Inf) ok <- ok & x >= lo
    if (hi < Inf) ok <- ok & x <= hi
  }
  ok
}

#' Is theta inside the prior support?
#'
#' Logical vector: each row of theta lies within lower/upper for every column
#' and has a finite log density under every custom block.
#' @keywords internal
#' @noRd
in_support <- function(prior, theta) {
  prior <- prior_resolve(prior)
  theta <- prior_theta_matrix(theta, prior, "in_support()")
  support_custom(prior, theta, prior_in_box(prior, theta))
}

# `inside` (rows of theta inside the prior's box) narrowed to rows where every custom block
# has a finite log density. `prior` must be resolved.
support_custom <- function(prior, theta, inside) {
  for (comp in prior$components) {
    if (inherits(comp, "nbi_custom")) {
      idx <- which(inside)
      if (length(idx) > 0L) {
        ld <- comp$log_density(theta[idx, comp$cols, drop = FALSE])
        inside[idx] <- is.finite(ld)
      }
    }
  }
  inside
}

# ---------------------------------------------------------------------------
# sampling and evaluation generics
# ---------------------------------------------------------------------------

#' Draw parameters from a prior
#'
#' @description
#' Draws `n` independent parameter vectors from a prior built with
#' [nbi_prior()] (or from a single component, whose parameter is then named
#' `theta`, or `theta1`, ..., `thetak`). Uses R's random number generator, so
#' [set.seed()] reproduces the draws.
#'
#' @param prior An `nbi_prior` object, a single prior component (e.g.
#'   `prior_uniform(0, 1)`), or a named list of components.
#' @param n A single non-negative whole number: the number of draws.
#' @return An `n x d` numeric matrix with the parameter names as column names.
#' @seealso [log_prior()], [nbi_prior()]
#' @examples
#' p <- nbi_prior(phi = prior_uniform(0, 2 * pi), A = prior_normal(0, 1))
#' set.seed(42)
#' sample_prior(p, 4)
#' sample_prior(prior_loguniform(1, 10), 2)
#' @export
sample_prior <- function(prior, n) UseMethod("sample_prior")

#' @rdname sample_prior
#' @export
sample_prior.nbi_prior <- function(prior, n) {
  fn <- "sample_prior()"
  if (missing(n)) prior_abort(fn, ": `n` is missing: how many draws?")
  check_count(n, "n", min = 0, where = paste0(fn, ": "))
  n <- as.integer(n)
  out <- matrix(0, nrow = n, ncol = prior$dim,
                dimnames = list(NULL, prior$names))
  for (comp in prior$components) {
    x <- comp$sample(n)
    if (!is.matrix(x) || nrow(x) != n || ncol(x) != length(comp$cols)) {
      prior_abort(fn, ": component `", comp$label, "` did not return an ",
                  n, " x ", length(comp$cols), " matrix.")
    }
    out[, comp$cols] <- x
  }
  out
}

#' @rdname sample_prior
#' @export
sample_prior.nbi_component <- function(prior, n) {
  sample_prior.nbi_prior(prior_resolve(prior), n)
}

#' @rdname sample_prior
#' @export
sample_prior.default <- function(prior, n) {
  sample_prior.nbi_prior(as_nbi_prior(prior, "prior"), n)
}

#' Joint log prior density
#'
#' @description
#' Evaluates the joint log density of a prior at each row of `theta`: the sum
#' of the components' log densities, `-Inf` outside the support (never
#' `NaN`).
#'
#' @param prior An `nbi_prior` object, a single prior component (treated as a
#'   one-block prior with parameter(s) named `theta`), or a named list of
#'   components.
#' @param theta An `n x d` numeric matrix (columns in the prior's order, or
#'   with column names containing all parameter names, which are then
#'   matched by name), a data frame, or a length-`d` vector giving one row
#'   (for a one-parameter prior, a vector of `n` values). Missing values are
#'   an error.
#' @return A numeric vector of `n` joint log densities.
#' @seealso [sample_prior()], [nbi_prior()]
#' @examples
#' p <- nbi_prior(phi = prior_uniform(0, 2 * pi), A = prior_normal(0, 1))
#' log_prior(p, c(1, 0))
#' log_prior(p, rbind(c(1, 0), c(7, 0)))  # second row outside the support
#' log_prior(prior_normal(0, 1), c(-1, 0, 1))
#' @export
log_prior <- function(prior, theta) UseMethod("log_prior")

#' @rdname log_prior
#' @export
log_prior.nbi_prior <- function(prior, theta) {
  theta <- prior_theta_matrix(theta, prior, "log_prior()")
  n <- nrow(theta)
  out <- numeric(n)
  if (n == 0L) return(out)
  inside <- prior_in_box(prior, theta)
  for (comp in prior$components) {
    if (inherits(comp, "nbi_custom")) {
      idx <- which(inside)
      if (length(idx) > 0L) {
        out[idx] <- out[idx] +
          comp$log_density(theta[idx, comp$cols, drop = FALSE])
      }
    } else {
      out <- out + comp$log_density(theta[, comp$cols, drop = FALSE])
    }
  }
  out[!inside] <- -Inf
  out[is.na(out)] <- -Inf
  unname(out)
}

#' @rdname log_prior
#' @export
log_prior.nbi_component <- function(prior, theta) {
  log_prior.nbi_prior(prior_resolve(prior), theta)
}

#' @rdname log_prior
#' @export
log_prior.default <- function(prior, theta) {
  log_prior.nbi_prior(as_nbi_prior(prior, "prior"), theta)
}

# ---------------------------------------------------------------------------
# printing
# ---------------------------------------------------------------------------

# "uniform(0, 6.28)" or "2 x uniform(0, 1)" or "normal(c(0, 1), c(1, 2))".
prior_describe_marginal <- function(x) {
  vals <- x$params
  same <- x$k > 1L && all(vapply(vals, function(v) all(v == v[1L]),
                                 logical(1)))
  if (x$k == 1L || same) {
    inner <- paste(vapply(vals, function(v) prior_fmt(v[1L]), character(1)),
                   collapse = ", ")
    s <- paste0(x$family, "(", inner, ")")
    if (same) s <- paste0(x$k, " x ", s)
    s
  } else {
    inner <- paste(vapply(vals, prior_fmt_vec, character(1)), collapse = ", ")
    paste0(x$family, "(", inner, ")")
  }
}

#' @rdname nbi_prior
#' @export
print.nbi_marginal <- function(x, ...) {
  cat("<nbi marginal: ", prior_describe_marginal(x), ">\n", sep = "")
  invisible(x)
}

#' @rdname nbi_prior
#' @export
print.nbi_custom <- function(x, ...) {
  support <- if (all(is.infinite(x$lower)) && all(is.infinite(x$upper))) {
    ""
  } else {
    paste0(", support [", prior_fmt_vec(x$lower), ", ",
           prior_fmt_vec(x$upper), "]")
  }
  cat("<nbi custom prior: dim ", x$k, support, ">\n", sep = "")
  invisible(x)
}

#' @rdname nbi_prior
#' @export
print.nbi_prior <- function(x, ...) {
  rows <- list()
  for (comp in x$components) {
    for (j in seq_len(comp$k)) {
      if (inherits(comp, "nbi_custom")) {
        dist <- "custom"
        par <- paste0("joint block `", comp$label, "` (dim ", comp$k, ")")
      } else {
        dist <- comp$family
        par <- paste(names(comp$params),
                     vapply(comp$params, function(v) prior_fmt(v[j]),
                            character(1)),
                     sep = " = ", collapse = ", ")
      }
      supp <- paste0("[", prior_fmt(comp$lower[j]), ", ",
                     prior_fmt(comp$upper[j]), "]")
      rows[[length(rows) + 1L]] <- c(comp$param_names[j], dist, par, supp)
    }
  }
  tab <- do.call(rbind, rows)
  tab <- rbind(c("name", "distribution", "parameters", "support"), tab)
  widths <- apply(tab, 2L, function(col) max(nchar(col)))
  cat("<nbi_prior: ", x$dim, " parameter", if (x$dim != 1L) "s", ">\n",
      sep = "")
  for (i in seq_len(nrow(tab))) {
    line <- paste(sprintf("%-*s", widths, tab[i, ]), collapse = "  ")
    cat("  ", sub("\\s+$", "", line), "\n", sep = "")
  }
  invisible(x)
}
