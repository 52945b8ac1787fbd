# Tests for nbi_simulate() and its helpers.

# A prior over `names`, each uniform on (0, 1): the package's own when it is
# available, else a minimal stand-in with the fields nbi_simulate() uses.
make_test_prior <- function(names = c("a", "b")) {
  if (exists("nbi_prior", mode = "function") &&
      exists("prior_uniform", mode = "function")) {
    args <- lapply(names, function(i) prior_uniform(0, 1))
    names(args) <- names
    return(do.call(nbi_prior, args))
  }
  structure(list(
    names = names, dim = length(names),
    sample = function(n) {
      matrix(stats::runif(n * length(names)), nrow = n,
             dimnames = list(NULL, names))
    }
  ), class = "nbi_prior")
}

make_engine <- function(simulator, names = c("a", "b"), vectorized = FALSE,
                        x_dim = NULL) {
  structure(list(simulator = simulator, prior = make_test_prior(names),
                 vectorized = vectorized, workdir = tempfile("nbi-sim-test-"),
                 x_dim = x_dim),
            class = "nbi_engine")
}

# The same engine with a new workdir: an identical call would otherwise resume from the
# chunk files of the previous one instead of simulating.
fresh_dir <- function(eng) {
  eng$workdir <- tempfile("nbi-sim-test-")
  eng
}

# nbi_simulate() draws from the prior through sample_prior(); the theta = NULL
# tests need it to be visible from where nbi_simulate() lives.
prior_sampling_available <- function() {
  exists("sample_prior", envir = environment(nbi_simulate), mode = "function")
}

# Multisession workers need nbi's functions: as globals when they were
# source()d, else from an installed copy of the package.
workers_can_run_nbi <- function() {
  if (!identical(environmentName(environment(nbi_simulate)), "nbi")) {
    return(TRUE)
  }
  length(find.package("nbi", lib.loc = .libPaths(), quiet = TRUE)) > 0L
}

theta_grid <- cbind(a = seq(0.05, 0.95, length.out = 10), b = 1:10)

det_sim <- function(th) c(th[["a"]] * 10, th[["b"]], th[["a"]] + th[["b"]])
noisy_sim <- function(th) th[["a"]] + stats::rnorm(3)

test_that("explicit theta: shapes, names, order and values", {
  eng <- make_engine(det_sim)
  # columns given in the other order are matched by name
  res <- nbi_simulate(eng, theta = theta_grid[, c("b", "a")], chunk_size = 3)
  expect_named(res, c("theta", "x", "n_failed", "n_cut", "kept"))
  expect_identical(res$kept, 1:10)
  expect_identical(res$n_failed, 0L)
  expect_identical(colnames(res$theta), c("a", "b"))
  expect_equal(unname(res$theta), unname(theta_grid))
  expect_true(is.matrix(res$x))
  expect_identical(dim(res$x), c(10L, 3L))
  expect_equal(res$x[, 1], theta_grid[, "a"] * 10)
  expect_equal(res$x[, 2], theta_grid[, "b"])
  expect_equal(res$x[, 3], theta_grid[, "a"] + theta_grid[, "b"])
  # `n` may be given along with theta when it agrees; data frames work too
  res2 <- nbi_simulate(eng, 10, theta = as.data.frame(theta_grid),
                       chunk_size = 10)
  expect_equal(res2$x, res$x)
  # unnamed columns are taken in the prior's order
  res3 <- nbi_simulate(eng, theta = unname(theta_grid), chunk_size = 10)
  expect_equal(res3$x, res$x)
})

test_that("theta = NULL draws n parameter sets from the prior", {
  skip_if_not(prior_sampling_available(), "sample_prior() not available")
  eng <- make_engine(det_sim)
  res <- nbi_simulate(eng, 7)
  expect_identical(dim(res$theta), c(7L, 2L))
  expect_identical(colnames(res$theta), c("a", "b"))
  expect_identical(dim(res$x), c(7L, 3L))
  expect_equal(res$x[, 1], res$theta[, "a"] * 10)
  expect_equal(res$x[, 2], res$theta[, "b"])
  expect_true(all(res$theta >= 0 & res$theta <= 1))
})

test_that("matrix outputs are returned as a list; data frames as matrices", {
  eng <- make_engine(function(th) matrix(th[["a"]] + 1:6, nrow = 3))
  res <- nbi_simulate(eng, theta = theta_grid[1:4, ])
  expect_true(is.list(res$x) && !is.data.frame(res$x))
  expect_length(res$x, 4)
  expect_identical(dim(res$x[[2]]), c(3L, 2L))
  expect_equal(res$x[[2]], matrix(theta_grid[2, "a"] + 1:6, nrow = 3))

  eng_df <- make_engine(function(th) data.frame(u = th[["a"]] + 1:2, v = 3:4))
  res_df <- nbi_simulate(eng_df, theta = theta_grid[1:3, ])
  expect_true(is.matrix(res_df$x[[3]]) && is.double(res_df$x[[3]]))
  expect_equal(unname(res_df$x[[3]][, "u"]), theta_grid[3, "a"] + 1:2)
})

test_that("results are reproducible under set.seed() (sequential plan)", {
  oplan <- future::plan()
  on.exit(future::plan(oplan), add = TRUE)
  future::plan("sequential")
  kind <- RNGkind()
  eng <- make_engine(noisy_sim)
  set.seed(1)
  r1 <- nbi_simulate(fresh_dir(eng), theta = theta_grid, chunk_size = 4)
  after1 <- stats::runif(1)
  set.seed(1)
  r2 <- nbi_simulate(fresh_dir(eng), theta = theta_grid, chunk_size = 4)
  after2 <- stats::runif(1)
  expect_identical(r1$x, r2$x)
  # the caller's RNG ends in the same state and keeps its kind
  expect_identical(after1, after2)
  expect_identical(RNGkind(), kind)
  # each simulation has its own stream, independent of the chunking
  expect_false(isTRUE(all.equal(r1$x[1, ] - theta_grid[1, "a"],
                                r1$x[2, ] - theta_grid[2, "a"])))
  set.seed(1)
  r3 <- nbi_simulate(fresh_dir(eng), theta = theta_grid, chunk_size = 10)
  expect_identical(r3$x, r1$x)
  # another seed gives other numbers
  set.seed(2)
  r4 <- nbi_simulate(fresh_dir(eng), theta = theta_grid, chunk_size = 10)
  expect_false(isTRUE(all.equal(r4$x, r1$x)))
})

test_that("multisession gives the same numbers as sequential", {
  skip_on_cran()
  skip_if_not(workers_can_run_nbi(), "nbi is not installed for the workers")
  oplan <- future::plan()
  on.exit(future::plan(oplan), add = TRUE)
  eng <- make_engine(noisy_sim)
  future::plan("sequential")
  set.seed(1)
  r_seq <- nbi_simulate(fresh_dir(eng), theta = theta_grid)
  after_seq <- stats::runif(1)
  future::plan("multisession", workers = 2)
  set.seed(1)
  r_ms <- nbi_simulate(fresh_dir(eng), theta = theta_grid)
  after_ms <- stats::runif(1)
  expect_identical(r_ms$x, r_seq$x)
  expect_identical(r_ms$theta, r_seq$theta)
  expect_identical(after_ms, after_seq)
})

test_that("failures on multisession workers are dropped, counted and quoted like serial ones", {
  skip_on_cran()
  skip_if_not(workers_can_run_nbi(), "nbi is not installed for the workers")
  oplan <- future::plan()
  on.exit(future::plan(oplan), add = TRUE)
  future::plan("multisession", workers = 2)
  eng <- make_engine(function(th) {
    if (th[["a"]] > 0.8) stop("boom on a worker")
    if (th[["a"]] < 0.1) return(c(NA, 1, 2))
    c(th[["a"]], th[["b"]], 1)
  })
  expect_warning(res <- nbi_simulate(eng, theta = theta_grid, chunk_size = 2),
                 "failed for 3 of 10.*a = 0.05.*NA")
  expect_identical(res$n_failed, 3L)
  expect_identical(nrow(res$x), 7L)
  many <- make_engine(function(th) if (th[["a"]] > 0.3) stop("mostly broken") else c(1, 2))
  expect_error(nbi_simulate(many, theta = theta_grid, chunk_size = 2),
               "more than half.*mostly broken")
})

test_that("chunk files under workdir hold all simulations", {
  eng <- make_engine(det_sim)
  res <- nbi_simulate(eng, theta = theta_grid, chunk_size = 3)
  dir <- attr(res, "sim_dir")
  expect_true(dir.exists(dir))
  expect_identical(normalizePath(dirname(dirname(dir))),
                   normalizePath(eng$workdir))
  files <- list.files(dir)
  expect_identical(files, sprintf("chunk_%06d.rds", 1:4))
  parts <- lapply(file.path(dir, files), readRDS)
  expect_equal(unname(do.call(rbind, lapply(parts, `[[`, "theta"))),
               unname(theta_grid))
  x <- do.call(c, lapply(parts, `[[`, "x"))
  expect_equal(do.call(rbind, x), res$x)
  expect_equal(read_sim_chunks(dir), res, ignore_attr = TRUE)
  # a second run gets its own folder and leaves the first one alone
  res2 <- nbi_simulate(eng, theta = theta_grid[1:2, ], chunk_size = 2)
  expect_false(identical(attr(res2, "sim_dir"), dir))
  expect_identical(list.files(dir), files)
  expect_length(list.files(attr(res2, "sim_dir")), 1)
})

test_that("errors for some parameters: dropped with one warning", {
  eng <- make_engine(function(th) {
    if (th[["a"]] > 0.8) stop("boom")
    det_sim(th)
  })
  expect_warning(res <- nbi_simulate(eng, theta = theta_grid, chunk_size = 3),
                 "failed for 2 of 10.*a = 0.85, b = 9.*boom")
  expect_identical(res$n_failed, 2L)
  expect_identical(nrow(res$theta), 8L)
  expect_identical(nrow(res$x), 8L)
  expect_true(all(res$theta[, "a"] <= 0.8))
  expect_false(anyNA(res$x))
  expect_equal(res$x[, 1], res$theta[, "a"] * 10)
  # the chunk files record the failures too
  parts <- lapply(list.files(attr(res, "sim_dir"), full.names = TRUE), readRDS)
  expect_identical(sum(unlist(lapply(parts, `[[`, "failed"))), 2L)
})

test_that("NA for every parameter set is an error naming the simulator", {
  eng <- make_engine(function(th) c(th[["a"]], NA))
  expect_error(nbi_simulate(eng, theta = theta_grid, chunk_size = 5),
               "simulator failed for every parameter set.*returned NA")
})

test_that("NaN, Inf and non-numeric outputs count as failures", {
  eng <- make_engine(function(th) {
    if (th[["b"]] == 2) return(c(1, NaN, 3))
    if (th[["b"]] == 3) return(c(1, Inf, 3))
    if (th[["b"]] == 4) return("x")
    det_sim(th)
  })
  expect_warning(res <- nbi_simulate(eng, theta = theta_grid, chunk_size = 5),
                 "failed for 3 of 10.*returned NaN")
  expect_identical(res$theta[, "b"], c(1, 5:10))
  expect_true(all(is.finite(res$x)))
})

test_that("outputs of the wrong length are dropped with a warning", {
  eng <- make_engine(function(th) {
    if (th[["a"]] > 0.7) return(1:5 + th[["a"]])
    det_sim(th)
  })
  expect_warning(res <- nbi_simulate(eng, theta = theta_grid, chunk_size = 4),
                 "failed for 3 of 10.*returned 5 values, expected 3")
  expect_identical(dim(res$x), c(7L, 3L))
  expect_identical(res$n_failed, 3L)
  # same when the bad outputs share a chunk with the first good one
  expect_warning(res1 <- nbi_simulate(eng, theta = theta_grid, chunk_size = 10),
                 "failed for 3 of 10.*returned 5 values, expected 3")
  expect_identical(res1$x, res$x)
  # with a known output shape (engine$x_dim), a consistently wrong length is
  # caught too
  eng_fixed <- make_engine(det_sim, x_dim = 4L)
  expect_error(nbi_simulate(eng_fixed, theta = theta_grid, chunk_size = 10),
               "every parameter set.*returned 3 values, expected 4")
})

test_that("more than half failing is an error", {
  eng <- make_engine(function(th) {
    if (th[["a"]] > 0.4) stop("out of range")
    det_sim(th)
  })
  expect_error(nbi_simulate(eng, theta = theta_grid, chunk_size = 5),
               "simulator failed for 6 of 10 parameter sets.*out of range")
})

test_that("vectorized simulators give the same numbers", {
  ref <- nbi_simulate(make_engine(det_sim), theta = theta_grid,
                      chunk_size = 10)
  vec_matrix <- function(th) cbind(th[, "a"] * 10, th[, "b"], th[, "a"] + th[, "b"])
  res_m <- nbi_simulate(make_engine(vec_matrix, vectorized = TRUE),
                        theta = theta_grid, chunk_size = 4)
  expect_equal(res_m$x, ref$x)
  expect_equal(res_m$theta, ref$theta)
  vec_list <- function(th) lapply(seq_len(nrow(th)), function(i) det_sim(th[i, ]))
  res_l <- nbi_simulate(make_engine(vec_list, vectorized = TRUE),
                        theta = theta_grid, chunk_size = 3)
  expect_equal(res_l$x, ref$x)
  # bad rows are dropped; a failing call fails its whole chunk
  vec_na <- function(th) {
    out <- vec_matrix(th)
    out[th[, "b"] == 5, 2] <- NA
    out
  }
  expect_warning(res_na <- nbi_simulate(make_engine(vec_na, vectorized = TRUE),
                                        theta = theta_grid, chunk_size = 10),
                 "failed for 1 of 10")
  expect_identical(res_na$theta[, "b"], c(1:4, 6:10) + 0)
  vec_wrong <- function(th) vec_matrix(th)[-1, , drop = FALSE]
  expect_error(nbi_simulate(make_engine(vec_wrong, vectorized = TRUE),
                            theta = theta_grid, chunk_size = 5),
               "simulator failed for every parameter set.*matrix with 5 rows")
})

test_that("bad arguments are rejected, naming the argument", {
  eng <- make_engine(det_sim)
  expect_error(nbi_simulate(eng, 0), "`n`")
  expect_error(nbi_simulate(eng, 1.5), "`n`.*1.5")
  expect_error(nbi_simulate(eng, -3), "`n`")
  expect_error(nbi_simulate(eng, c(2, 3)), "`n`")
  expect_error(nbi_simulate(eng, "10"), "`n`")
  expect_error(nbi_simulate(eng), "`n`")
  expect_error(nbi_simulate(eng, 5, theta = theta_grid), "`n`.*`theta`")
  expect_error(nbi_simulate(eng, theta = cbind(a = 1:3, c = 1:3)),
               "`theta`.*a, c.*a, b")
  expect_error(nbi_simulate(eng, theta = cbind(a = 1:3, b = 1:3, c = 1:3)),
               "`theta`")
  expect_error(nbi_simulate(eng, theta = matrix(1:9, 3)),
               "`theta` has 3 unnamed columns")
  expect_error(nbi_simulate(eng, theta = cbind(a = c(1, NA), b = 1:2)),
               "`theta`.*missing")
  expect_error(nbi_simulate(eng, theta = 1:2), "`theta`")
  expect_error(nbi_simulate(eng, theta = theta_grid, chunk_size = 0),
               "`chunk_size`")
  expect_error(nbi_simulate(list(simulator = det_sim), 5), "`object`")
  expect_error(nbi_simulate(eng, theta = theta_grid, foo = 1), "foo")
  # nothing ran: no chunk files were written
  expect_length(list.files(file.path(eng$workdir, "sims"), recursive = TRUE), 0)
})

test_that("as_x_matrix stacks equal-length vectors only", {
  m <- as_x_matrix(list(c(u = 1, v = 2), c(u = 3, v = 4)))
  expect_identical(m, matrix(c(1, 3, 2, 4), 2, dimnames = list(NULL, c("u", "v"))))
  l <- list(1:2, 1:3)
  expect_identical(as_x_matrix(l), l)
  l2 <- list(matrix(1, 2, 2), matrix(2, 2, 2))
  expect_identical(as_x_matrix(l2), l2)
})

test_that("simulate_chunk reports failures per row", {
  th <- theta_grid[1:3, ]
  sim <- function(t) if (t[["b"]] == 2) stop("nope") else t[["a"]] + 0:1
  res <- simulate_chunk(sim, th, FALSE)
  expect_identical(res$failed, c(FALSE, TRUE, FALSE))
  expect_null(res$x[[2]])
  expect_match(res$reason[2], "error: nope")
  expect_equal(res$x[[3]], th[3, "a"] + 0:1)
  res3 <- simulate_chunk(sim, th, FALSE, expected = 3L)
  expect_identical(res3$failed, c(TRUE, TRUE, TRUE))
  expect_match(res3$reason[1], "returned 2 values, expected 3")
})

test_that("an interrupted run resumes from its chunk files instead of simulating again", {
  calls <- new.env()
  calls$n <- 0L
  calls$stop_after <- 5L
  sim <- function(th) {
    calls$n <- calls$n + 1L
    if (calls$n > calls$stop_after)  # what Ctrl-C signals, after 5 simulations
      stop(structure(class = c("interrupt", "condition"), list(message = "", call = NULL)))
    det_sim(th)
  }
  eng <- make_engine(sim)
  set.seed(11)
  got <- tryCatch(suppressMessages(nbi_simulate(eng, 10, chunk_size = 2)),
                  interrupt = function(e) "interrupted")
  expect_identical(got, "interrupted")
  dir <- list.files(file.path(eng$workdir, "sims"), full.names = TRUE)
  expect_length(dir, 1)
  expect_length(list.files(dir), 2)  # the two finished chunks of 2 were kept
  calls$n <- 0L
  calls$stop_after <- Inf
  set.seed(11)
  expect_message(res <- nbi_simulate(eng, 10, chunk_size = 2), "resuming.*2 of 5 chunks")
  expect_identical(calls$n, 6L)  # only the 3 missing chunks ran
  calls$n <- 0L
  set.seed(11)
  ref <- suppressMessages(nbi_simulate(make_engine(sim), 10, chunk_size = 2))
  expect_identical(res$theta, ref$theta)
  expect_identical(res$x, ref$x)
  expect_identical(attr(res, "sim_dir"), dir)
  # other settings (another seed) make another run
  set.seed(12)
  other <- nbi_simulate(eng, 10, chunk_size = 2)
  expect_false(identical(attr(other, "sim_dir"), dir))
})
