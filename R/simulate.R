# Running the user's simulator: argument checks, chunking, parallel execution
# through the user's future plan, per-simulation random number streams,
# failure handling and on-disk chunk files.

#' Run the simulator of an engine
#'
#' Draws parameter sets from the engine's prior (or takes the ones given in
#' `theta`) and runs the engine's simulator on each of them, in chunks, in
#' parallel over whatever [future::plan()] is active.
#'
#' @section Parallel execution and progress:
#' The simulations are grouped into chunks of `chunk_size` parameter sets and
#' the chunks are run with [future.apply::future_lapply()] over the current
#' [future::plan()]; `nbi_simulate()` never changes the plan itself, so call,
#' e.g., `future::plan("multisession")` beforehand to use several cores.
#' Progress is reported through \pkg{progressr}, one step per chunk; as usual
#' with \pkg{progressr} it is only shown inside
#' [progressr::with_progress()] or after [progressr::handlers()] has been set
#' with `global = TRUE`.
#'
#' @section Reproducibility:
#' Every simulation gets its own L'Ecuyer-CMRG random number stream, derived
#' from the state of R's random number generator when `nbi_simulate()` is
#' called. After `set.seed()` the results are therefore identical whatever the
#' plan, the number of workers and `chunk_size`. For vectorized simulators the
#' stream is set once per chunk, so the results there also depend on
#' `chunk_size` (give it explicitly to make them independent of the plan).
#' The random number generator of the calling session is left in the same
#' state whatever the plan.
#'
#' @section Failures:
#' A simulation fails when the simulator throws an error, returns something
#' that is not numeric (data frames need all-numeric columns), returns any
#' `NA`, `NaN` or infinite value, or returns an output whose shape (length of a
#' vector, `dim` of a matrix or array) differs from the expected one: the
#' engine's `x_dim` when it is set, else the most common shape among the successful
#' simulations. Failed simulations are dropped. If some fail, one warning gives
#' their number and the first failure; if more than half (or all) of those not cut
#' fail, the function stops with that information instead.
#'
#' @section Selection cuts:
#' A simulator returns [nbi_cut()] for a simulation that does not pass the survey's
#' selection (too faint, too few epochs, no detected peak). Cut simulations are not
#' failures: they are counted in `n_cut`, saved as cut in the chunk files, left out of
#' `theta` and `x`, and never an error however many there are, unless none passes.
#'
#' @section Files:
#' Each run writes its chunks to the folder
#' `<object$workdir>/sims/run_<key>/`, one file `chunk_NNNNNN.rds` per chunk,
#' saved as soon as the chunk's wave of futures (one chunk per worker) has
#' finished. The key is a hash of the run's parameter sets, random number
#' streams and chunking, so calling `nbi_simulate()` (or [fit()]) again after
#' the same `set.seed()` with the same settings finds the folder and
#' **resumes**: finished chunks are read back instead of simulated again, and
#' a message says how many. The key includes the simulator's code but not
#' data its closure captures: after changing such data, use a new `workdir`
#' or delete the folder. Each file holds a list with `theta` (the chunk's parameter sets,
#' a matrix), `x` (a list of outputs, `NULL` for failed simulations),
#' `failed` (logical), `cut` (logical), `reason` (character, `NA` for successes) and `index`
#' (the rows of the chunk in the full `theta`). An interrupted run thus keeps
#' the chunks it finished, and the next identical call picks them up. The
#' folder is returned as attribute `"sim_dir"`.
#'
#' @param object An `nbi_engine`, see [nbi_engine()].
#' @param n Number of simulations: a single positive whole number. May be
#'   missing or `NULL` when `theta` is given (then it must equal
#'   `nrow(theta)` if given).
#' @param theta Optional parameter sets to simulate at instead of prior draws:
#'   a numeric matrix or data frame with one row per simulation and one column
#'   per parameter of the prior. Named columns are matched to the prior's
#'   parameter names (and reordered); unnamed columns are taken in the prior's
#'   order. No missing or infinite values.
#' @param chunk_size Number of simulations per chunk (one future each). The
#'   default, `NULL`, uses `ceiling(n / (4 * future::nbrOfWorkers()))`,
#'   capped at 1000.
#' @param ... Not used; must be empty.
#'
#' @return A list with
#'   \item{theta}{the parameter sets of the successful simulations, a matrix
#'     with one named column per parameter;}
#'   \item{x}{their outputs: a matrix with one row per simulation when every
#'     output is a numeric vector of the same length, else a list of the
#'     outputs (data frames are converted to numeric matrices);}
#'   \item{n_failed}{the number of failed (dropped) simulations;}
#'   \item{n_cut}{the number of simulations cut by the selection ([nbi_cut()]);}
#'   \item{kept}{the rows of the requested `theta` that were kept.}
#'   The chunk folder is attached as attribute `"sim_dir"`.
#'
#' @examples
#' eng <- nbi_engine(function(th) th[["a"]] + rnorm(3),
#'                   nbi_prior(a = prior_uniform(0, 1)))
#' s <- nbi_simulate(eng, 20)
#' dim(s$x)
#' head(s$theta)
#'
#' # given parameter sets, with a progress bar
#' progressr::with_progress(
#'   s2 <- nbi_simulate(eng, theta = cbind(a = c(0.1, 0.5, 0.9)))
#' )
#' s2$x
#' @export
nbi_simulate <- function(object, n, theta = NULL, chunk_size = NULL, ...) {
  check_dots(list(...), "nbi_simulate")
  plan <- sim_plan(object, n, theta, chunk_size)   # checks everything before anything runs
  # leave the caller's RNG where it is now, whatever the futures do with it
  old_rng <- rng_state()
  on.exit(rng_restore(old_rng), add = TRUE)
  results <- sim_execute(object$simulator, plan$vectorized, plan$theta, plan$seeds, plan$idx,
                         plan$expected, plan$run_dir)
  out <- sim_collect(plan$theta, results, object$prior$names, strict = TRUE)
  attr(out, "sim_dir") <- plan$run_dir
  out
}

# The plan of an nbi_simulate() call, after checking its arguments: the parameter sets
# (the prior's draws when `theta` is NULL), one random stream per row, the chunks, the
# expected output shape and the run's folder (named by all of these, so the same call
# again resumes there).
sim_plan <- function(object, n, theta, chunk_size) {
  if (!inherits(object, "nbi_engine"))
    stop(sprintf("`object` must be an nbi_engine (see nbi_engine()), not %s.",
                 sim_describe(object)), call. = FALSE)
  if (!is.function(object$simulator)) stop("`object$simulator` must be a function.", call. = FALSE)
  pnames <- object$prior$names
  if (!is.character(pnames) || length(pnames) < 1L || anyNA(pnames))
    stop("`object$prior` must be an nbi_prior with parameter names.", call. = FALSE)
  n_given <- !missing(n) && !is.null(n)
  if (n_given) n <- as.integer(check_count(n, "n", min = 1))
  if (is.null(theta)) {
    if (!n_given) stop("`n` must be given when `theta` is NULL.", call. = FALSE)
  } else {
    theta <- sim_check_theta(theta, pnames, "theta")
    if (n_given && n != nrow(theta))
      stop(sprintf("`n` (%d) must equal the number of rows of `theta` (%d).", n, nrow(theta)),
           call. = FALSE)
    n <- nrow(theta)
  }
  if (!is.null(chunk_size)) chunk_size <- as.integer(check_count(chunk_size, "chunk_size", min = 1))
  expected <- sim_check_x_dim(object$x_dim)
  vectorized <- isTRUE(object$vectorized)
  workdir <- object$workdir
  if (is.null(workdir)) workdir <- file.path(tempdir(), "nbi")
  if (!is.character(workdir) || length(workdir) != 1L || is.na(workdir) || !nzchar(workdir))
    stop("`object$workdir` must be a single folder path.", call. = FALSE)
  if (is.null(theta)) {
    theta <- sim_check_theta(sample_prior(object$prior, n), pnames, "the output of sample_prior()")
    if (nrow(theta) != n)
      stop(sprintf("sample_prior() returned %d rows instead of %d.", nrow(theta), n), call. = FALSE)
  }
  seeds <- sim_make_seeds(n)
  if (is.null(chunk_size)) {
    workers <- future::nbrOfWorkers()
    w <- if (is.numeric(workers) && length(workers) == 1L && is.finite(workers) && workers >= 1)
      workers else 1
    chunk_size <- min(1000L, max(1L, as.integer(ceiling(n / (4 * w)))))
  }
  chunk_size <- min(chunk_size, n)
  list(theta = theta, seeds = seeds, expected = expected, vectorized = vectorized,
       idx = unname(split(seq_len(n), ceiling(seq_len(n) / chunk_size))),
       run_dir = sim_run_dir(file.path(workdir, "sims"),
                             sim_run_key(theta, seeds, chunk_size, vectorized, expected,
                                         object$simulator)))
}

# Runs the chunks `idx` (row indices of theta; row i uses the stream seeds[i, ]) over the
# user's future plan, with progressr ticks. With a `run_dir`, chunks saved there by an
# earlier identical call are read back instead of run, and each wave of chunks (one per
# worker) is saved as it finishes; without one (predict's simulations), all chunks go to
# future_lapply at once and nothing is stored. Returns one result per chunk
# (simulate_chunk's list).
sim_execute <- function(simulator, vectorized, theta, seeds, idx, expected, run_dir = NULL) {
  n_chunks <- length(idx)
  results <- if (is.null(run_dir)) vector("list", n_chunks) else sim_load_chunks(run_dir, idx, theta)
  done <- which(!vapply(results, is.null, logical(1)))
  if (length(done) > 0L)
    message(sprintf("nbi_simulate(): resuming from %s (%d of %d chunks already done)",
                    run_dir, length(done), n_chunks))
  todo <- setdiff(seq_len(n_chunks), done)
  workers <- future::nbrOfWorkers()
  finite_workers <- is.numeric(workers) && length(workers) == 1L &&
    is.finite(workers) && workers >= 1
  wave_size <- if (finite_workers && !is.null(run_dir)) as.integer(workers) else max(1L, length(todo))
  waves <- unname(split(todo, ceiling(seq_along(todo) / wave_size)))
  p <- progressr::progressor(steps = length(todo))
  n_saved <- length(done)
  finished <- FALSE
  on.exit(if (!finished && n_saved > 0L && !is.null(run_dir)) {
    message(sprintf(paste0("nbi_simulate() stopped early; %d of %d chunks ",
                           "were saved in %s"), n_saved, n_chunks, run_dir))
  }, add = TRUE)
  for (wave in waves) {
    tasks <- lapply(wave, function(k) {
      list(chunk = k,
           theta = theta[idx[[k]], , drop = FALSE],
           seeds = seeds[idx[[k]], , drop = FALSE])
    })
    out <- future.apply::future_lapply(
      tasks, sim_run_task,
      simulator = simulator, vectorized = vectorized, expected = expected, p = p,
      future.seed = TRUE, future.label = "nbi_simulate-%d"
    )
    for (j in seq_along(wave)) {
      k <- wave[j]
      res <- out[[j]]
      if (!is.null(run_dir)) {
        sim_save_chunk(list(theta = tasks[[j]]$theta, x = res$x,
                            failed = res$failed, cut = res$cut, reason = res$reason,
                            index = idx[[k]]),
                       file.path(run_dir, sprintf("chunk_%06d.rds", k)))
        n_saved <- n_saved + 1L
      }
      results[[k]] <- res
    }
  }
  finished <- TRUE
  # without an expected shape, the reference is the most common one among the successes
  # (the first success's shape would let one malformed output reject every correct one)
  ref <- if (is.null(expected)) sim_modal_shape(results) else expected
  if (!is.null(ref)) results <- lapply(results, sim_enforce_shape, ref)
  results
}

# The most common output shape among the successes of chunk results (matrices of one
# width count as one shape whatever their rows: sets of measurements vary in size); the
# first such shape, or NULL without any success.
sim_modal_shape <- function(results) {
  shapes <- list()
  keys <- character(0)
  counts <- integer(0)
  for (res in results) {
    ok <- which(!res$failed & !chunk_cut(res))
    if (!length(ok)) next
    sh <- if (is.matrix(res$x)) rep(list(ncol(res$x)), length(ok)) else lapply(res$x[ok], sim_shape)
    k <- vapply(sh, function(v) if (length(v) == 2L) paste0("?x", v[2]) else paste(v, collapse = "x"), "")
    for (u in unique(k)) {
      m <- match(u, keys)
      if (is.na(m)) {
        keys <- c(keys, u)
        counts <- c(counts, 0L)
        shapes[[length(shapes) + 1L]] <- sh[[match(u, k)]]
        m <- length(keys)
      }
      counts[m] <- counts[m] + sum(k == u)
    }
  }
  if (!length(keys)) return(NULL)
  shapes[[which.max(counts)]]
}

# The chunks' results as nbi_simulate()'s value: the kept parameter sets and outputs, the
# number of failures and the kept rows. `strict`: more than half failing is an error (a
# training set); otherwise (predict's simulations) failures are only counted and the first
# one described in attribute "first_failure".
sim_collect <- function(theta, results, pnames, strict = TRUE) {
  n <- nrow(theta)
  failed <- unlist(lapply(results, `[[`, "failed"), use.names = FALSE)
  cut <- unlist(lapply(results, chunk_cut), use.names = FALSE)
  reason <- unlist(lapply(results, `[[`, "reason"), use.names = FALSE)
  n_failed <- sum(failed)
  n_cut <- sum(cut)
  if (strict && n_cut == n)
    stop(sprintf("the selection cut every simulation (%d of %d): nothing passed", n_cut, n),
         call. = FALSE)
  first <- NULL
  n <- n - n_cut  # failures are judged among the simulations the selection kept
  if (n_failed > 0L) {
    i1 <- which(failed)[1L]
    first <- sprintf("first failure at theta = (%s): %s",
                     sim_format_theta(theta[i1, ], pnames), reason[i1])
    if (strict && n_failed == n) {
      stop(sprintf("simulator failed for every parameter set (%d of %d); %s",
                   n_failed, n, first), call. = FALSE)
    }
    if (strict && n_failed > n / 2) {
      stop(sprintf(paste0("simulator failed for %d of %d parameter sets ",
                          "(more than half); %s"), n_failed, n, first),
           call. = FALSE)
    }
    if (strict)
      warning(sprintf(paste0("simulator failed for %d of %d parameter sets, ",
                             "which were dropped; %s"), n_failed, n, first),
              call. = FALSE)
  }
  keep <- !failed & !cut
  theta_ok <- theta[keep, , drop = FALSE]
  rownames(theta_ok) <- NULL
  out <- list(theta = theta_ok, x = chunk_outputs(results, keep), n_failed = as.integer(n_failed),
              n_cut = as.integer(n_cut), kept = which(keep))
  attr(out, "first_failure") <- first
  attr(out, "cut") <- which(cut)  # the rows cut (predict's importance weights count them)
  out
}

#' Run one chunk of simulations
#'
#' Runs `simulator` on every row of `theta` (or once on the whole matrix when
#' `vectorized`), catching errors and checking each output.
#'
#' @param simulator The user's simulator.
#' @param theta Numeric matrix, one parameter set per row, named columns.
#' @param vectorized Whether `simulator` takes the whole matrix.
#' @param expected Optional shape every output must have (length of a vector
#'   or `dim` of a matrix/array).
#' @param seeds Optional integer matrix of L'Ecuyer-CMRG `.Random.seed`
#'   values, one row per row of `theta` (only the first is used when
#'   `vectorized`); the caller's RNG state is restored afterwards.
#' @return `list(x = list of outputs or NULL per failure, failed = logical,
#'   reason = character (NA for successes))`.
#' @noRd
simulate_chunk <- function(simulator, theta, vectorized = FALSE,
                           expected = NULL, seeds = NULL) {
  m <- nrow(theta)
  nms <- colnames(theta)
  x <- vector("list", m)
  failed <- logical(m)
  cut <- logical(m)
  reason <- rep(NA_character_, m)
  if (!is.null(seeds)) {
    old_seed <- rng_state()
    on.exit(rng_restore(old_seed), add = TRUE)
  }
  record <- function(i, chk) {
    if (inherits(chk, "nbi_cut")) {
      cut[i] <<- TRUE
      reason[i] <<- paste0("cut", if (length(chk$reason)) paste0(": ", chk$reason) else "")
    } else if (chk$ok) {
      x[[i]] <<- chk$value
    } else {
      failed[i] <<- TRUE
      reason[i] <<- chk$reason
    }
  }
  if (isTRUE(vectorized)) {
    if (!is.null(seeds)) {
      assign(".Random.seed", seeds[1L, ], envir = globalenv())
    }
    out <- tryCatch(simulator(theta), error = sim_error)
    fast <- sim_vectorized_matrix(out, m, expected)
    if (!is.null(fast)) return(fast)
    parts <- sim_split_vectorized(out, m)
    if (is.character(parts)) {
      failed[] <- TRUE
      reason[] <- parts
    } else {
      for (i in seq_len(m)) record(i, if (inherits(parts[[i]], "nbi_cut")) parts[[i]] else
        sim_check_output(parts[[i]], expected))
    }
  } else {
    for (i in seq_len(m)) {
      th <- theta[i, ]
      names(th) <- nms
      if (!is.null(seeds)) {
        assign(".Random.seed", seeds[i, ], envir = globalenv())
      }
      out <- tryCatch(simulator(th), error = sim_error)
      record(i, if (inherits(out, "nbi_cut")) out else sim_check_output(out, expected))
    }
  }
  list(x = x, failed = failed, reason = reason, cut = cut)
}

#' A vectorised simulator's n x p numeric matrix, checked as a whole
#'
#' The fast path of simulate_chunk(): a plain numeric matrix with one row per simulation
#' (and `expected`, when given, a vector length equal to its columns) is kept as a matrix;
#' rows with NA, NaN or infinite values fail with the reason row by row.
#' @return `list(x = the matrix, failed, reason)`, or NULL when `out` is anything else.
#' @noRd
sim_vectorized_matrix <- function(out, m, expected) {
  if (!is.matrix(out) || !is.numeric(out) || is.object(out) || nrow(out) != m || ncol(out) < 1 ||
      (!is.null(expected) && !identical(as.integer(expected), ncol(out))))
    return(NULL)
  if (storage.mode(out) != "double") storage.mode(out) <- "double"
  failed <- !is.finite(rowSums(out))
  reason <- rep(NA_character_, m)
  for (i in which(failed)) reason[i] <- sim_check_output(out[i, ], expected)$reason
  dimnames(out) <- list(NULL, colnames(out))
  list(x = out, failed = failed, reason = reason, cut = logical(m))
}

# The shape of output i of a chunk result (whose x is a list, or a matrix of rows).
chunk_shape <- function(res, i) if (is.matrix(res$x)) ncol(res$x) else sim_shape(res$x[[i]])

# The kept outputs of chunk results (in order; `keep` over all their rows): one matrix
# when every chunk holds a matrix (vectorised simulators) of one width, else as_x_matrix()
# of the outputs as a list.
chunk_outputs <- function(results, keep) {
  xs <- lapply(results, `[[`, "x")
  mats <- vapply(xs, is.matrix, logical(1))
  if (length(xs) && all(mats) && length(unique(vapply(xs, ncol, 1L))) == 1L) {
    x <- do.call(rbind, xs)[keep, , drop = FALSE]
    return(x)
  }
  rows <- do.call(c, lapply(xs, function(x) if (is.matrix(x))
    lapply(seq_len(nrow(x)), function(i) { v <- x[i, ]; names(v) <- colnames(x); v }) else x))
  as_x_matrix(rows[keep])
}

#' Stack simulator outputs
#'
#' @param x_list List of outputs.
#' @return An n x p matrix when every element is a plain numeric vector of the
#'   same length p (column names from the first element's names), else the
#'   list itself, unnamed.
#' @noRd
as_x_matrix <- function(x_list) {
  if (is.matrix(x_list)) return(x_list)
  x_list <- unname(x_list)
  if (length(x_list) == 0L) return(x_list)
  plain <- vapply(x_list, function(o) is.numeric(o) && is.null(dim(o)),
                  logical(1))
  if (!all(plain)) return(x_list)
  lens <- lengths(x_list)
  if (any(lens != lens[1L])) return(x_list)
  out <- matrix(as.double(unlist(x_list, use.names = FALSE)),
                nrow = length(x_list), ncol = lens[1L], byrow = TRUE)
  cn <- names(x_list[[1L]])
  if (!is.null(cn)) colnames(out) <- cn
  out
}

#' Read the chunk files of one nbi_simulate() run back
#'
#' @param dir A run folder (attribute `"sim_dir"` of a result).
#' @return The same list as nbi_simulate() returns (no failure checks), for
#'   the chunks present.
#' @noRd
read_sim_chunks <- function(dir) {
  files <- sort(list.files(dir, pattern = "^chunk_[0-9]+\\.rds$",
                           full.names = TRUE))
  if (length(files) == 0L) {
    stop(sprintf("no chunk files in %s", dir), call. = FALSE)
  }
  parts <- lapply(files, readRDS)
  theta <- do.call(rbind, lapply(parts, `[[`, "theta"))
  failed <- unlist(lapply(parts, `[[`, "failed"), use.names = FALSE)
  cut <- unlist(lapply(parts, chunk_cut), use.names = FALSE)
  keep <- !failed & !cut
  theta <- theta[keep, , drop = FALSE]
  rownames(theta) <- NULL
  list(theta = theta, x = chunk_outputs(parts, keep),
       n_failed = as.integer(sum(failed)), n_cut = as.integer(sum(cut)), kept = which(keep))
}

#' Mark a simulation as cut by the selection
#'
#' A simulator returns `nbi_cut()` instead of an observation when the simulated object would
#' not pass the survey's selection (e.g. too faint, too few epochs, no significant peak).
#' A cut is an outcome, not a failure: [nbi_simulate()] and [fit()] count cuts
#' (`n_cut`, `history$rounds$n_cut`), keep them on disk as cut, and never stop however
#' many there are, unless none passes. The fitted network is then the posterior of the
#' selected population. A noise function may also return `nbi_cut()` elements for list
#' observations (see [nbi_engine()], "Augmentation and selection cuts").
#'
#' @param reason optional short text saying why (kept in the chunk files' `reason`).
#' @return An object of class `nbi_cut`.
#' @examples
#' sim <- function(theta) {
#'   x <- theta[["mu"]] + stats::rnorm(3)
#'   if (max(x) < 0) return(nbi_cut("no detection"))  # only detected objects are catalogued
#'   x
#' }
#' eng <- nbi_engine(sim, nbi_prior(mu = prior_normal(0, 1)))
#' s <- nbi_simulate(eng, 200)
#' s$n_cut
#' @export
nbi_cut <- function(reason = NULL) {
  if (!is.null(reason) && (!is.character(reason) || length(reason) != 1 || is.na(reason)))
    stop("`reason` must be NULL or one string", call. = FALSE)
  structure(list(reason = reason), class = "nbi_cut")
}

#' @export
print.nbi_cut <- function(x, ...) {
  cat(sprintf("<nbi cut%s>\n", if (length(x$reason)) paste0(": ", x$reason) else ""))
  invisible(x)
}

# ---- internal helpers --------------------------------------------------------

# The cut flags of a chunk result (chunks saved before cuts existed have none).
chunk_cut <- function(res) if (is.null(res$cut)) logical(length(res$failed)) else res$cut

# What each future runs: one chunk, then one progress tick.
sim_run_task <- function(task, simulator, vectorized, expected, p) {
  res <- simulate_chunk(simulator, task$theta, vectorized,
                        expected = expected, seeds = task$seeds)
  if (is.function(p)) p()
  res
}

sim_error <- function(e) {
  structure(list(message = conditionMessage(e)), class = "nbi_sim_error")
}

# Turn a vectorized simulator's value into a list of m observations, or a
# single failure reason (character) for the whole chunk.
sim_split_vectorized <- function(out, m) {
  if (inherits(out, "nbi_sim_error")) {
    return(paste0("error: ", out$message))
  }
  if (is.data.frame(out)) {
    if (!all(vapply(out, is.numeric, logical(1)))) {
      return("vectorized simulator returned a data frame with non-numeric columns")
    }
    out <- as.matrix(out)
  }
  if (is.matrix(out) && nrow(out) == m) {
    cn <- colnames(out)
    return(lapply(seq_len(m), function(i) {
      v <- out[i, ]
      names(v) <- cn
      v
    }))
  }
  if (is.list(out) && length(out) == m) return(unname(out))
  sprintf(paste0("vectorized simulator returned %s; expected a list of %d ",
                 "observations or a matrix with %d rows"),
          sim_describe(out), m, m)
}

# Check one output; returns list(ok, value, reason).
sim_check_output <- function(out, expected = NULL) {
  bad <- function(reason) list(ok = FALSE, value = NULL, reason = reason)
  if (inherits(out, "nbi_sim_error")) return(bad(paste0("error: ", out$message)))
  if (is.data.frame(out)) {
    if (!all(vapply(out, is.numeric, logical(1)))) {
      return(bad("returned a data frame with non-numeric columns"))
    }
    out <- as.matrix(out)
  }
  if (is.null(out)) return(bad("returned NULL"))
  if (!is.numeric(out) || is.list(out)) {
    return(bad(paste0("returned ", sim_describe(out))))
  }
  if (length(out) == 0L) return(bad("returned 0 values"))
  if (length(dim(out)) == 1L) {
    nm <- dimnames(out)[[1L]]
    dim(out) <- NULL
    names(out) <- nm
  }
  if (anyNA(out)) {
    what <- if (any(is.nan(out))) "NaN" else "NA"
    k <- sum(is.na(out))
    return(bad(if (k == length(out)) {
      paste0("returned ", what)
    } else {
      sprintf("returned %s (%d of %d values)", what, k, length(out))
    }))
  }
  if (any(is.infinite(out))) {
    return(bad(sprintf("returned infinite values (%d of %d values)",
                       sum(is.infinite(out)), length(out))))
  }
  if (!is.null(expected)) {
    msg <- sim_shape_mismatch(sim_shape(out), expected)
    if (!is.null(msg)) return(bad(msg))
  }
  if (storage.mode(out) != "double") storage.mode(out) <- "double"
  list(ok = TRUE, value = out, reason = NA_character_)
}

sim_shape <- function(v) {
  d <- dim(v)
  if (is.null(d)) length(v) else as.integer(d)
}

sim_describe_shape <- function(s) {
  if (length(s) == 1L) {
    sprintf("%d value%s", s, if (s == 1L) "" else "s")
  } else {
    sprintf("a %s %s", paste(s, collapse = " x "),
            if (length(s) == 2L) "matrix" else "array")
  }
}

sim_shape_mismatch <- function(shape, expected) {
  if (identical(as.integer(shape), as.integer(expected))) return(NULL)
  # matrices may differ in their number of rows (sets of measurements of variable size)
  if (length(shape) == 2 && length(expected) == 2 && shape[2] == expected[2]) return(NULL)
  sprintf("returned %s, expected %s", sim_describe_shape(shape),
          sim_describe_shape(expected))
}

# Mark the successes of a chunk result whose shape differs from `ref` failed.
sim_enforce_shape <- function(res, ref) {
  if (is.matrix(res$x)) {  # one shape for every row of a vectorised chunk
    msg <- sim_shape_mismatch(ncol(res$x), ref)
    if (!is.null(msg)) {
      res$reason[!res$failed] <- msg
      res$failed[] <- TRUE
    }
    return(res)
  }
  for (i in which(!res$failed & !chunk_cut(res))) {
    msg <- sim_shape_mismatch(sim_shape(res$x[[i]]), ref)
    if (!is.null(msg)) {
      res$failed[i] <- TRUE
      res$reason[i] <- msg
      res$x[i] <- list(NULL)
    }
  }
  res
}

sim_describe <- function(v) {
  if (is.null(v)) return("NULL")
  if (is.data.frame(v)) return("a data frame")
  if (is.matrix(v)) {
    return(sprintf("a %d x %d %s matrix", nrow(v), ncol(v), typeof(v)))
  }
  if (is.function(v)) return("a function")
  if (is.list(v)) return(sprintf("a list of length %d", length(v)))
  if (is.factor(v)) return("a factor")
  if (is.atomic(v)) {
    return(sprintf("a %s vector of length %d", typeof(v), length(v)))
  }
  sprintf("an object of class %s", paste(class(v), collapse = "/"))
}

sim_format_theta <- function(v, nms) {
  vals <- vapply(as.numeric(v), function(z) format(signif(z, 4)), character(1))
  paste(sprintf("%s = %s", nms, vals), collapse = ", ")
}

# Validate / normalise a matrix of parameter sets against the prior's names (R/theta.R).
sim_check_theta <- function(theta, pnames, arg) {
  if (!is.matrix(theta) && !is.data.frame(theta))
    stop(sprintf("`%s` must be a numeric matrix or data frame with one row per simulation and one column per parameter (%s), not %s.",
                 arg, paste(pnames, collapse = ", "), sim_describe(theta)), call. = FALSE)
  as_theta(theta, pnames, arg)
}

sim_check_x_dim <- function(x_dim) {
  if (is.null(x_dim)) return(NULL)
  if (!is.numeric(x_dim) || length(x_dim) < 1L || anyNA(x_dim) ||
      any(x_dim < 1) || any(x_dim != round(x_dim))) {
    stop("`object$x_dim` must be NULL or a vector of positive whole numbers.",
         call. = FALSE)
  }
  as.integer(x_dim)
}

# A fresh folder <sims_dir>/run_NNNN for this call's chunk files.
sim_run_dir <- function(sims_dir, key) {
  dir <- file.path(sims_dir, paste0("run_", key))
  if (!dir.exists(dir) && !dir.create(dir, recursive = TRUE, showWarnings = FALSE) &&
      !dir.exists(dir)) {
    stop(sprintf("cannot create the folder %s (from `object$workdir`).", dir),
         call. = FALSE)
  }
  dir
}

# 16 hex digits naming a run by what determines its simulations: the parameter sets, random
# streams, chunking and the simulator's code (not the data its closure captures).
sim_run_key <- function(theta, seeds, chunk_size, vectorized, expected, simulator) {
  f <- tempfile("nbi-key-")
  on.exit(unlink(f))
  con <- file(f, "wb")
  code <- if (is.primitive(simulator)) deparse(simulator)
          else c(deparse(formals(simulator)), deparse(body(simulator)))
  serialize(list(unname(theta), seeds, as.integer(chunk_size), vectorized, expected,
                 colnames(theta), code), con, version = 2)
  close(con)
  substr(unname(tools::md5sum(f)), 1, 16)
}

# Chunks an earlier (interrupted) call of the same run saved: a list with one entry per
# chunk, NULL where the chunk is missing, unreadable or does not match.
sim_load_chunks <- function(run_dir, idx, theta) {
  lapply(seq_along(idx), function(k) {
    f <- file.path(run_dir, sprintf("chunk_%06d.rds", k))
    if (!file.exists(f)) return(NULL)
    v <- tryCatch(readRDS(f), error = function(e) NULL)
    if (!is.list(v) || !identical(as.integer(v$index), as.integer(idx[[k]])) ||
        !isTRUE(all.equal(unname(v$theta), unname(theta[idx[[k]], , drop = FALSE]),
                          tolerance = 0)))
      return(NULL)
    list(x = v$x, failed = v$failed, reason = v$reason, cut = chunk_cut(v))
  })
}

# Write via a temporary file so an interruption never leaves a broken chunk.
sim_save_chunk <- function(value, file) {
  tmp <- paste0(file, ".tmp")
  saveRDS(value, tmp)
  if (!file.rename(tmp, file)) {
    unlink(tmp)
    stop(sprintf("cannot write %s", file), call. = FALSE)
  }
  invisible(file)
}

# n independent L'Ecuyer-CMRG streams (rows of .Random.seed values), derived from `start`
# (an integer) or else from one draw of the caller's RNG; the caller's RNG state and kind
# are left unchanged.
sim_make_seeds <- function(n, start = NULL) {
  s <- if (is.null(start)) sample.int(.Machine$integer.max, 1L) else as.integer(start)
  old <- rng_state()
  on.exit(rng_restore(old), add = TRUE)
  set.seed(s, kind = "L'Ecuyer-CMRG")
  cur <- get(".Random.seed", envir = globalenv())
  out <- matrix(0L, nrow = length(cur), ncol = n)  # filled by column: one stream each
  for (i in seq_len(n)) {
    cur <- parallel::nextRNGStream(cur)
    out[, i] <- cur
  }
  t(out)
}

