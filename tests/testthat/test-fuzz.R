# Fuzzing every registered .Call entry point: valid arguments, corrupted at random (wrong
# types, lengths and dims, NA/NaN/Inf, negative or absurd sizes, malformed specs, parameter
# vectors of another model, swapped arguments), must each give a result or an ordinary R
# error, never a crash. A crash kills the test process, so the test fails by not completing.
# To find the call behind a crash, set NBI_FUZZ_TRACE to a file name: each call's entry and
# arguments are saved there (saveRDS) just before the call is made.

fz_calls <- 1000L

fz_pick <- function(x) x[[sample.int(length(x), 1L)]]

fz_nonfinite <- list(NA, NA_integer_, NA_real_, NaN, Inf, -Inf)
# 715827883 = ceiling(2^31 / 3): 3 * K overflowed an int in the flow's layout
fz_sizes <- list(-1, -1L, 0, 0L, 1e9, .Machine$integer.max, -.Machine$integer.max, 2^31, 2^53,
                 1e300, -1e300, 0.5, -0.5, 3.5, 715827883L)

# another type: character, logical, integer <-> double, list, NULL, function, and others
fz_type <- function(v) {
  flat <- if (is.atomic(v)) v else tryCatch(unlist(v), error = function(e) NULL)
  if (!is.atomic(flat)) flat <- NULL
  suppressWarnings(switch(sample.int(10L, 1L),
    as.character(flat),
    as.logical(flat),
    if (is.numeric(v)) {
      storage.mode(v) <- if (is.integer(v)) "double" else "integer"
      v
    } else as.integer(flat),
    as.list(flat),
    NULL,
    function(...) NULL,
    as.complex(flat),
    new.env(),
    as.name("x"),
    as.raw(seq_along(flat) %% 256L)))
}

# another length: empty, an element dropped or appended, doubled
fz_length <- function(v) {
  if (!is.vector(v) && !is.atomic(v)) return(list())
  n <- length(v)
  switch(sample.int(4L, 1L),
    v[0],
    if (n > 1) v[-sample.int(n, 1L)] else v[0],
    c(v, if (n > 0) v[n] else 1),
    rep(v, 2L))
}

# one element replaced (a list element too)
fz_poke <- function(v, value) {
  if (!(is.atomic(v) || is.list(v)) || length(v) == 0) return(value)
  i <- sample.int(length(v), 1L)
  if (is.list(v)) v[i] <- list(value) else v[i] <- value
  v
}

# other dims: a row or column more or less, transposed, dropped, or reshaped
fz_dims <- function(v) {
  if (!is.atomic(v) || length(v) == 0) return(matrix(numeric(0), 0, 3))
  if (is.matrix(v) && runif(1) < 0.6) {
    return(switch(sample.int(5L, 1L),
      v[, -1, drop = FALSE], cbind(v, v[, 1]), v[-1, , drop = FALSE], rbind(v, v[1, ]), t(v)))
  }
  n <- length(v)
  switch(sample.int(4L, 1L),
    `dim<-`(v, NULL), matrix(v, 1L), matrix(v, ncol = 1L), array(v, c(1L, n, 1L)))
}

fz_value <- function(v) {
  switch(sample.int(5L, 1L),
    fz_type(v),
    fz_length(v),
    fz_poke(v, fz_pick(fz_nonfinite)),
    if (runif(1) < 0.5) fz_pick(fz_sizes) else fz_poke(v, fz_pick(fz_sizes)),
    fz_dims(v))
}

# a model spec (or one of its parts): fields removed, renamed, duplicated, of the wrong
# type, length or value; the featurizer type switched; the names dropped
fz_list <- function(l) {
  subs <- which(vapply(l, is.list, logical(1)))
  if (length(subs) > 0 && runif(1) < 0.7) {
    i <- subs[sample.int(length(subs), 1L)]
    l[i] <- list(fz_mutate(l[[i]]))
    return(l)
  }
  n <- length(l)
  if (n == 0) return(fz_value(l))
  i <- sample.int(n, 1L)
  switch(sample.int(8L, 1L),
    l[-i],
    {
      names(l)[i] <- fz_pick(list("", "zz", toupper(names(l)[i]), NA_character_))
      l
    },
    {
      l[i] <- list(fz_value(l[[i]]))
      l
    },
    {
      l[i] <- list(fz_value(l[[i]]))
      l
    },
    unname(l),
    c(stats::setNames(list(fz_value(l[[i]])), names(l)[i]), l),
    {
      if ("type" %in% names(l)) l$type <- fz_pick(list(-1L, 0L, 1L, 2L, 3L, 4L, NA_integer_, 2.5))
      l
    },
    fz_value(l))
}

fz_mutate <- function(v) {
  if (is.list(v) && !is.null(names(v)) && runif(1) < 0.8) fz_list(v) else fz_value(v)
}

# a base is list(args = valid arguments, alts = named lists of plausible but mismatched
# replacements, e.g. another model's spec or parameters)
fz_corrupt <- function(base) {
  a <- base$args
  u <- runif(1)
  if (u < 0.1 && length(a) > 1) {
    ij <- sample.int(length(a), 2L)
    a[ij] <- a[rev(ij)]
    return(a)
  }
  if (u < 0.2 && length(base$alts) > 0) {
    nm <- fz_pick(names(base$alts))
    a[nm] <- list(fz_pick(base$alts[[nm]]))
    return(a)
  }
  k <- if (runif(1) < 0.8) 1L else 2L
  for (i in sample.int(length(a), min(k, length(a)))) a[i] <- list(fz_mutate(a[[i]]))
  a
}

fz_call <- function(entry, args) {
  fn <- get(paste0("C_", entry), envir = asNamespace("nbi"))
  tryCatch({
    out <- NULL
    utils::capture.output(out <- suppressWarnings(do.call(.Call, c(list(fn), unname(args)),
                                                          quote = TRUE)))
    out
  }, error = function(e) e)
}

# a scalar as C's Rf_asReal would read it (NA when it is not one)
fz_count <- function(v) {
  if (!is.atomic(v) || length(v) != 1) return(NA_real_)
  suppressWarnings(as.numeric(if (is.complex(v)) Re(v) else v))
}

# fz_calls corrupted calls of `entry`; `cheap(args)` is FALSE for calls that would be valid
# but enormous (these are redrawn). Returns the number of calls rejected with an error.
fz_run <- function(entry, bases, seed, cheap = function(a) TRUE) {
  for (b in bases) {
    r <- fz_call(entry, b$args)
    expect_false(inherits(r, "error"), label = paste(entry, "on valid arguments"))
  }
  trace <- Sys.getenv("NBI_FUZZ_TRACE")
  set.seed(seed)
  rejected <- 0L
  for (i in seq_len(fz_calls)) {
    repeat {
      a <- tryCatch(fz_corrupt(fz_pick(bases)), error = function(e) NULL)
      if (!is.null(a) && cheap(a)) break
    }
    if (nzchar(trace)) saveRDS(list(entry = entry, i = i, args = a), trace)
    if (inherits(fz_call(entry, a), "error")) rejected <- rejected + 1L
  }
  if (nzchar(trace))
    message(sprintf("%s: %d corrupted calls, %d rejected", entry, fz_calls, rejected))
  expect_gt(rejected, 0L)
  rejected
}

# ---- valid arguments ------------------------------------------------------------------

fz_models <- local({
  mk <- function(spec, n = 3L, seed = 1) {
    p <- random_params(spec, seed = seed, scale = 0.3)
    set.seed(seed)
    nin <- spec$feat$n_in
    d <- spec$flow$d
    x <- matrix(rnorm(nin * n), nin, n)
    if (spec$feat$type == 3L) x[seq(1, nin, by = 1L + spec$feat$values), ] <- 1 + (seq_len(n) %% 4)
    if (spec$feat$type == 4L) x[1, ] <- 1 + (seq_len(n) %% spec$feat$rows)  # row counts
    list(spec = spec, params = p, x = x, theta = matrix(rnorm(d * n), d, n))
  }
  st <- structure(list(type = "set_transformer", n_tokens = 4L, n_values = 2L, d_model = 4L,
                       heads = 2L, layers = 1L, hidden = 6L, dim_out = 3L),
                  class = "nbi_featurizer")
  tsf <- featurizer_timeseries(d_model = 4, heads = 2, layers = 1, hidden = 3, queries = 2,
                               n_freq = 2, dim_out = 3)
  list(
    identity = mk(small_spec()),
    mlp = mk(small_spec(d = 3, n_in = 4, featurizer = featurizer_mlp(hidden = c(5, 4), dim_out = 3),
                        blocks = 2, mixture = 2)),
    resnet_gru = mk(model_spec(featurizer_resnet_gru(channels = 2, depth = 2, kernel = 3,
                                                     dim_conv_min = 2, dim_conv_max = 4,
                                                     n_rnn = 1, dim_out = 3),
                               flow_maf(blocks = 2, hidden = 6, mixture = 2), n_in = 10, d = 2)),
    set_transformer = mk(model_spec(st, flow_maf(blocks = 2, hidden = 6, mixture = 2),
                                    n_in = 9, d = 2)),
    timeseries = mk(model_spec(tsf, flow_maf(blocks = 2, hidden = 6, mixture = 2), n_in = 10,
                               d = 2, feat = nbi:::ts_spec(tsf, 3, 3, c(0.5, 1)))))
})

# specs of absurd sizes that once wrapped C's size arithmetic around (and crashed): MLP widths
# whose parameter count wraps size_t to 1, and 3 * K * d beyond int
fz_crafted_specs <- local({
  s <- fz_models$identity$spec
  H <- .Machine$integer.max
  wrap_mlp <- s
  wrap_mlp$feat <- list(type = 1L, n_in = 3L, hidden = c(H, H, H, H, H - 1L, 1L), n_out = 3L,
                        act = 0L)
  wrap_k <- s
  wrap_k$flow$K <- 715827883L
  huge_flow <- s
  huge_flow$flow[c("hidden", "layers")] <- list(1e9, 16L)
  list(wrap_mlp, wrap_k, huge_flow)
})

# one base per model, with the other models' specs, parameters and data as mismatches
fz_model_bases <- function(make_args) {
  lapply(seq_along(fz_models), function(k) {
    others <- fz_models[-k]
    own <- make_args(fz_models[[k]])
    alts <- list(spec = c(lapply(others, `[[`, "spec"), fz_crafted_specs),
                 params = c(lapply(others, function(m) make_args(m)$params),
                            list(own$params[-1], c(own$params, 0), own$params[0])),
                 x = lapply(others, `[[`, "x"),
                 theta = lapply(others, `[[`, "theta"))
    list(args = own, alts = alts[intersect(names(alts), names(own))])
  })
}

# the flow's share of a model: its parameters are the last ones
fz_flow_params <- function(m) {
  flow_only <- list(feat = list(type = 0L, n_in = m$spec$flow$nc, hidden = integer(0),
                                n_out = m$spec$flow$nc, act = 0L),
                    flow = m$spec$flow)
  utils::tail(m$params, .Call(C_r_model_n_params, flow_only))
}

# ---- one test per entry point -----------------------------------------------------------

test_that("fuzz: r_model_init, r_model_n_params", {
  bases <- fz_model_bases(function(m) list(spec = m$spec, seed = 1))
  fz_run("r_model_init", bases, seed = 101)
  bases <- fz_model_bases(function(m) list(spec = m$spec))
  fz_run("r_model_n_params", bases, seed = 102)
})

# the temperature: 1 (the flow itself) for some models, tempered for the others
fz_temper <- function(m) if (m$spec$feat$type >= 2L) 2 else 1

test_that("fuzz: r_model_log_prob", {
  bases <- fz_model_bases(function(m) list(spec = m$spec, params = m$params, x = m$x,
                                           theta = m$theta, temper = fz_temper(m), threads = 1L))
  fz_run("r_model_log_prob", bases, seed = 103)
})

test_that("fuzz: r_model_log_prob_obs, r_model_features", {
  bases <- fz_model_bases(function(m) list(spec = m$spec, params = m$params, x = m$x[, 1:2],
                                           theta = m$theta, counts = c(1L, 2L),
                                           temper = fz_temper(m), threads = 1L))
  fz_run("r_model_log_prob_obs", bases, seed = 118)
  bases <- fz_model_bases(function(m) list(spec = m$spec, params = m$params, x = m$x,
                                           threads = 1L))
  fz_run("r_model_features", bases, seed = 119)
  bases <- fz_model_bases(function(m) list(spec = m$spec, x = m$x, batch = 2L, threads = 1L))
  fz_run("r_model_train_work", bases, seed = 125)
})

test_that("fuzz: r_obs_keys", {
  bases <- list(list(args = list(x = matrix(rnorm(6), 3, 2), rows = 3L, base = 12345)))
  fz_run("r_obs_keys", bases, seed = 120)
})

test_that("fuzz: r_tmix_fit, r_tmix_sample, r_tmix_log_density", {
  set.seed(13)
  d <- 2; K <- 2
  settings <- nbi:::adapt_settings[nbi:::tmix_c_settings]
  settings$components <- K; settings$em_iters <- 3L; settings$em_rows <- 20L
  z <- matrix(rnorm(d * 30), d, 30)
  bases <- list(list(args = list(z = z, log_w = rnorm(30), log_p = rnorm(30), counts = c(10L, 20L),
                                 S0 = array(diag(d), c(d, d, 2)), settings = settings,
                                 seeds = c(1, 2), threads = 1L)),
                list(args = list(z = z, log_w = rnorm(30), log_p = NULL, counts = c(10L, 20L),
                                 S0 = array(diag(d), c(d, d, 2)), settings = settings,
                                 seeds = c(1, 2), threads = 1L)))
  # em_rows and the iterations up to 2^31 - 1 are accepted and would run: keep them small
  cheap <- function(a) {
    s <- a[[6]]
    if (!is.list(s) || is.null(names(s))) return(TRUE)
    it <- vapply(c("em_iters", "kmeans_iters"), function(f) fz_count(s[[f]]), 0)
    all(is.na(it) | it <= 100 | it > 10000)
  }
  fz_run("r_tmix_fit", bases, seed = 121, cheap = cheap)
  mix <- .Call(C_r_tmix_fit, z, rnorm(30), NULL, c(10L, 20L), array(diag(d), c(d, d, 2)), settings,
               c(1, 2), 1L)
  mix$status <- NULL
  bases <- list(list(args = list(mix = mix, counts = c(3L, 4L), seeds = c(5, 6), threads = 1L)))
  cheap_n <- function(a) {
    k <- a[[2]]
    !is.numeric(k) || length(k) != 2 || anyNA(k) || all(k <= 1e4 | k > .Machine$integer.max)
  }
  fz_run("r_tmix_sample", bases, seed = 122, cheap = cheap_n)
  bases <- list(list(args = list(mix = mix, z = z[, 1:5], counts = c(2L, 3L), threads = 1L)))
  fz_run("r_tmix_log_density", bases, seed = 123)
})

test_that("fuzz: r_model_sample", {
  bases <- fz_model_bases(function(m) list(spec = m$spec, params = m$params, x = m$x,
                                           n_samples = 4L, seed = 42, temper = fz_temper(m),
                                           threads = 1L))
  # n_samples up to 2^31 - 1 is accepted and would draw that many: keep draws cheap
  cheap <- function(a) {
    k <- fz_count(a[[4]])
    is.na(k) || k <= 1e4 || k > .Machine$integer.max
  }
  fz_run("r_model_sample", bases, seed = 104, cheap = cheap)
})

test_that("fuzz: r_flow_grad", {
  bases <- fz_model_bases(function(m) {
    n <- ncol(m$theta)
    list(spec = m$spec, params = fz_flow_params(m), theta = m$theta,
         context = matrix(seq_len(m$spec$flow$nc * n) / 10, m$spec$flow$nc, n),
         g = rep(1, n), threads = 1L)
  })
  fz_run("r_flow_grad", bases, seed = 105)
})

test_that("fuzz: r_model_nll_grad", {
  bases <- fz_model_bases(function(m) list(spec = m$spec, params = m$params, x = m$x,
                                           theta = m$theta, threads = 1L))
  fz_run("r_model_nll_grad", bases, seed = 106)
})

test_that("fuzz: r_train", {
  m <- fz_models$identity
  set.seed(7)
  n <- 300L  # batches of more than 256 rows run in OpenMP threads
  nin <- m$spec$feat$n_in
  x <- matrix(rnorm(nin * n), nin, n)
  th <- matrix(rnorm(2 * n), 2, n)
  xv <- matrix(rnorm(nin * 3), nin, 3)
  tv <- matrix(rnorm(2 * 3), 2, 3)
  opts <- list(epochs = 1, batch = 300, patience = 1, threads = 1, lr = 1e-3, clip = 5,
               seed = 1, verbose = 0L, average = 0.999, average2 = 0.99)
  args <- list(spec = m$spec, params = m$params, x_train = x, th_train = th,
               x_valid = xv, th_valid = tv, noise_sd = NULL, prepare = NULL, opts = opts)
  with_noise <- args
  with_noise$noise_sd <- rep(0.1, nin)
  with_prepare <- args
  with_prepare[c("x_valid", "th_valid")] <- list(NULL, NULL)
  with_prepare$prepare <- function(epoch) x + 0.01 * epoch
  alts <- list(spec = c(lapply(fz_models[-1], `[[`, "spec"), fz_crafted_specs),
               opts = list(replace(opts, "threads", 1e9), replace(opts, "threads", 1025),
                           replace(opts, "epochs", -1e300), replace(opts, "batch", 2^31),
                           replace(opts, "average", 1), replace(opts, "average2", -0.5),
                           replace(opts, "seed", -1), replace(opts, "verbose", 2), opts[-10],
                           unlist(opts)),
               params = list(m$params[-1], fz_models$mlp$params),
               prepare = list(function(epoch) stop("no noise today"), function(epoch) x[, -1],
                              function(epoch) x * NA, sum))
  bases <- lapply(list(args, with_noise, with_prepare), function(a) list(args = a, alts = alts))
  # epochs up to 2^31 - 1 are accepted and would run (and allocate their history): keep them few
  cheap <- function(a) {
    o <- a[[9]]
    e <- if (is.list(o) && !is.null(names(o))) fz_count(o[["epochs"]]) else NA
    is.na(e) || e <= 20 || e >= 2^31
  }
  fz_run("r_train", bases, seed = 107, cheap = cheap)
})

test_that("fuzz: r_importance", {
  set.seed(8)
  bases <- list(list(args = list(rnorm(5), rnorm(5), rnorm(5))),
                list(args = list(c(0, -Inf, NaN, Inf), rep(0, 4), rep(-1, 4))))
  fz_run("r_importance", bases, seed = 108)
})

test_that("fuzz: r_draws_theta", {
  set.seed(9)
  z <- matrix(rnorm(12), 3)
  bases <- list(list(args = list(z, rnorm(4), 2L, c(0, 1, -1), c(1, 2, 0.5), rep(-Inf, 3),
                                 c(Inf, 1, Inf), c("a", "b", "c"))),
                list(args = list(z[1, , drop = FALSE], rnorm(4), 4L, 0, 1, -1, 1, "a")))
  fz_run("r_draws_theta", bases, seed = 118)
})

test_that("fuzz: r_blas_threads", {
  old <- .Call(C_r_blas_threads, NA_integer_)
  on.exit(if (!is.na(old)) .Call(C_r_blas_threads, old), add = TRUE)
  bases <- list(list(args = list(NA_integer_)), list(args = list(if (is.na(old)) 1L else old)))
  fz_run("r_blas_threads", bases, seed = 109)
})

test_that("fuzz: r_nn_linear, r_nn_act, r_nn_gemm", {
  set.seed(9)
  C <- 3; OC <- 4; B <- 2
  bases <- list(list(args = list(x = matrix(rnorm(C * B), C, B), w = matrix(rnorm(C * OC), C, OC),
                                 b = rnorm(OC), dout = matrix(rnorm(OC * B), OC, B))))
  fz_run("r_nn_linear", bases, seed = 110)
  bases <- lapply(0:2, function(a) list(args = list(x = rnorm(7), dout = rnorm(7), act = a,
                                                   threads = 1L)))
  fz_run("r_nn_act", bases, seed = 111)
  bases <- lapply(0:2, function(m) list(args = list(a = matrix(rnorm(6), 3, 2),
                                                   b = matrix(rnorm(8), 2, 4),
                                                   c0 = matrix(0, 3, 4), trans = c(0L, 0L),
                                                   coef = c(1, 0), mode = m, threads = 2L, mirror = 1L)))
  fz_run("r_nn_gemm", bases, seed = 118)
})

test_that("fuzz: r_nn_conv1d, r_nn_layernorm, r_nn_maxpool2, r_nn_gru, r_nn_segpool", {
  set.seed(10)
  B <- 2; L <- 5; C <- 2; OC <- 3; k <- 3
  bases <- list(list(args = list(x = array(rnorm(C * L * B), c(C, L, B)),
                                 w = array(rnorm(C * k * OC), c(C, k, OC)), b = rnorm(OC),
                                 dout = array(rnorm(OC * L * B), c(OC, L, B)),
                                 dims = c(B, L, C, OC, k))))
  fz_run("r_nn_conv1d", bases, seed = 112)
  N <- 3; C <- 4
  bases <- list(list(args = list(x = matrix(rnorm(C * N), C, N), gamma = rnorm(C), beta = rnorm(C),
                                 dout = matrix(rnorm(C * N), C, N), dims = c(N, C))))
  fz_run("r_nn_layernorm", bases, seed = 113)
  B <- 2; L <- 5; C <- 2
  bases <- list(list(args = list(x = array(rnorm(C * L * B), c(C, L, B)),
                                 dout = array(rnorm(C * 2 * B), c(C, 2, B)), dims = c(B, L, C))))
  fz_run("r_nn_maxpool2", bases, seed = 114)
  B <- 2; T <- 3; C <- 2; H <- 3
  bases <- list(list(args = list(x = array(rnorm(C * T * B), c(C, T, B)),
                                 Wih = matrix(rnorm(C * 3 * H), C, 3 * H),
                                 Whh = matrix(rnorm(H * 3 * H), H, 3 * H),
                                 bih = rnorm(3 * H), bhh = rnorm(3 * H),
                                 dout = array(rnorm(H * T * B), c(H, T, B)),
                                 dims = c(B, T, C, H))))
  fz_run("r_nn_gru", bases, seed = 115)
  bases <- list(list(args = list(kv = rnorm(2 * 4 * 4), q = matrix(rnorm(8), 4, 2),
                                 counts = c(1L, 3L), heads = 2L, dout = rnorm(2 * 2 * 4),
                                 dmean = rnorm(2 * 4), threads = 1L)))
  fz_run("r_nn_segpool", bases, seed = 124)
})

test_that("fuzz: r_c2st_loss_grad, r_c2st_fit_predict", {
  set.seed(11)
  d <- 2; h1 <- 4; h2 <- 3; n <- 5
  x <- matrix(rnorm(d * n), d, n)
  y <- c(0, 1, 1, 0, 1)
  np <- h1 * d + h1 + h2 * h1 + h2 + h2 + 1
  bases <- list(list(args = list(params = rnorm(np, sd = 0.3), x = x, y = y,
                                 opts = list(h1 = h1, h2 = h2, l2 = 0.1, threads = 1L))))
  fz_run("r_c2st_loss_grad", bases, seed = 116)
  opts <- list(h1 = 4, h2 = 4, epochs = 2, batch = 2, patience = 1, threads = 1, lr = 1e-3,
               l2 = 0, tol = 0, seed = 1)
  xt <- matrix(rnorm(d * 2), d, 2)
  bases <- list(list(args = list(x_train = x, y_train = y, x_valid = NULL, y_valid = NULL,
                                 x_test = xt, opts = opts)),
                list(args = list(x_train = x, y_train = y, x_valid = xt, y_valid = c(1, 0),
                                 x_test = xt, opts = opts)))
  # epochs up to 2^31 - 1 are accepted and would run: keep them few
  cheap <- function(a) {
    o <- a[[6]]
    e <- if (is.list(o) && !is.null(names(o))) fz_count(o[["epochs"]]) else NA
    is.na(e) || e <= 20 || e >= 2^31
  }
  fz_run("r_c2st_fit_predict", bases, seed = 117, cheap = cheap)
})

test_that("fuzz: every registered entry point was covered", {
  entries <- vapply(getDLLRegisteredRoutines("nbi", addNames = FALSE)$.Call, `[[`, "", "name")
  covered <- c("r_model_init", "r_model_n_params", "r_model_log_prob", "r_model_sample",
               "r_flow_grad", "r_model_nll_grad", "r_train", "r_importance", "r_blas_threads",
               "r_nn_linear", "r_nn_act", "r_nn_gemm", "r_nn_conv1d", "r_nn_layernorm", "r_nn_maxpool2",
               "r_nn_gru", "r_nn_segpool", "r_c2st_loss_grad", "r_c2st_fit_predict", "r_draws_theta",
               "r_obs_keys", "r_model_log_prob_obs", "r_model_features", "r_model_train_work",
               "r_tmix_fit",
               "r_tmix_sample", "r_tmix_log_density",
               "r_have_sgemm", "r_sgemm_kernel", "r_dgemm_kernel", "r_flow_block_kinds")  # no arguments to corrupt
  expect_setequal(entries, covered)
})
