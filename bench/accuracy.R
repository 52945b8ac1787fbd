# Accuracy of nbi's NPE on four sbibm tasks (Lueckmann et al. 2021), scored like sbibm:
# the classifier two-sample test (C2ST, nbi_c2st()) between surrogate posterior draws and
# reference posterior draws, averaged over observations, at several simulation budgets.
#
#   Rscript bench/accuracy.R          # after R CMD INSTALL . (all tasks, budgets, 10 obs)
#   NBI_ACC_TASKS=gaussian_linear,two_moons NBI_ACC_BUDGETS=1000,10000 NBI_ACC_NOBS=3 \
#     Rscript bench/accuracy.R
#
# Tasks, observations (sbibm's num_observation_1..10), exact likelihoods and reference
# samplers live in inst/bench/sbibm_tasks.R (also used by tests/testthat/test-accuracy.R);
# bench/check_reference.R checks the reference samplers.
#
# For each task and budget: one amortised fit (fit(engine, theta = , x = ) on `budget`
# prior simulations; flow_maf(blocks = 5, hidden = 64), identity featurizer, settings by
# budget in sbibm_fit_settings()), then for every observation (one batched predict() call
# for all of them):
#   c2st        C2ST of NBI_ACC_NDRAWS surrogate draws vs as many reference draws
#   c2st_is     C2ST of the importance-resampled draws (predict() weighs the same draws
#               with the exact likelihood; nbi_resample() to NBI_ACC_NDRAWS draws)
#   efficiency  n_eff / n of those importance weights
#   is_draws    proposals weighed for c2st_is: NBI_ACC_NDRAWS, or more when their n_eff fell
#               short of NBI_ACC_NDRAWS (up to NBI_ACC_IS_MAX times as many, drawn afresh)
# and the wall times of fitting, predicting and the two tests. With NBI_ACC_SNPE=1 the
# same is done for SNPE-IS (fit(n_rounds = NBI_ACC_ROUNDS, x_obs = ) per observation,
# budget / rounds simulations per round; it may stop early: sims_used says how many).
#
# Environment variables (defaults in brackets):
#   NBI_ACC_TASKS    comma-separated tasks [gaussian_linear,two_moons,gaussian_mixture,slcp]
#   NBI_ACC_BUDGETS  comma-separated simulation budgets [1000,10000,100000]
#   NBI_ACC_NOBS     number of observations, sbibm's 1..N [10]
#   NBI_ACC_NDRAWS   draws per sample for each C2ST [10000, as sbibm]
#   NBI_ACC_SNPE     1 to add SNPE-IS, "only" for SNPE-IS alone [0]
#   NBI_ACC_ROUNDS   SNPE-IS rounds [5]
#   NBI_ACC_IS_MAX   at most this many times NBI_ACC_NDRAWS proposals for c2st_is [20]; 1
#                    resamples the NBI_ACC_NDRAWS proposals whatever their n_eff (rows run
#                    before this option existed did that)
#   NBI_ACC_ADAPT    rounds of adaptive importance sampling for c2st_is (predict(...,
#                    adapt = ): a defensive Student-t mixture fitted to the weighted draws,
#                    each round as many draws as the importance sample) [0]; column adapt
#   NBI_ACC_IS       0 to score the surrogate alone (no importance weights, c2st_is NA) [1]
#   NBI_ACC_PRECISION  the engines' matrix products, "float64" or "float32" [float64];
#                    column precision
#   NBI_ACC_SEED     seed [1]
#   NBI_ACC_THREADS  threads of the C core [1]
#   NBI_ACC_OUT      output prefix [accuracy]: writes <prefix>.csv (means per task, method
#                    and budget) and <prefix>_obs.csv (one row per observation) next to
#                    this script (or where the prefix says, when it holds a "/")
#   NBI_ACC_APPEND   1 to append to existing CSVs instead of replacing them; "replace" to
#                    keep their rows except those of the (task, method, budget) cells run [0]
#   NBI_BENCH_SMOKE  1: a run of seconds that checks the script works (CI): one task, budget
#                    and observation, 300 draws, 2 epochs; writes to a temporary folder
# Output columns fit_average and fit_average2: the caps of the iterate averages fit()
# validated: 0.999 and 0.99 (the better of two is kept, the default since this version),
# 0.999 and 0 (one average), 0 and 0 for rows run before fit() averaged its iterates.
suppressPackageStartupMessages(library(nbi))
`%||%` <- function(a, b) if (is.null(a)) b else a

tasks_file <- file.path("inst", "bench", "sbibm_tasks.R")  # from the source root, else installed
if (!file.exists(tasks_file)) tasks_file <- system.file("bench", "sbibm_tasks.R", package = "nbi")
source(tasks_file)  # also defines bench_env() and bench_script_dir()
if (identical(Sys.getenv("NBI_BENCH_SMOKE"), "1"))
  Sys.setenv(NBI_ACC_TASKS = "gaussian_linear", NBI_ACC_BUDGETS = "500", NBI_ACC_NOBS = "1",
             NBI_ACC_NDRAWS = "300", NBI_ACC_IS_MAX = "1",
             NBI_ACC_OUT = file.path(tempdir(), "accuracy-smoke"))

tasks <- strsplit(bench_env("NBI_ACC_TASKS", paste(sbibm_task_names, collapse = ",")), ",")[[1]]
budgets <- as.numeric(strsplit(bench_env("NBI_ACC_BUDGETS", "1000,10000,100000"), ",")[[1]])
n_obs <- as.integer(bench_env("NBI_ACC_NOBS", "10"))
n_draws <- as.integer(bench_env("NBI_ACC_NDRAWS", "10000"))
snpe_opt <- bench_env("NBI_ACC_SNPE", "0")
stopifnot(snpe_opt %in% c("0", "1", "only"))
methods <- switch(snpe_opt, "0" = "npe", "1" = c("npe", "snpe_is"), only = "snpe_is")
n_rounds <- as.integer(bench_env("NBI_ACC_ROUNDS", "5"))
is_max <- as.numeric(bench_env("NBI_ACC_IS_MAX", "20"))
adapt <- as.integer(bench_env("NBI_ACC_ADAPT", "0"))
is_c2st <- bench_env("NBI_ACC_IS", "1") != "0"
precision <- bench_env("NBI_ACC_PRECISION", "float64")
stopifnot(precision %in% c("float64", "float32"))
options(nbi.precision = precision)  # nbi_engine()'s default precision
seed <- as.integer(bench_env("NBI_ACC_SEED", "1"))
threads <- as.integer(bench_env("NBI_ACC_THREADS", "1"))
prefix <- bench_env("NBI_ACC_OUT", "accuracy")
append_opt <- bench_env("NBI_ACC_APPEND", "0")
stopifnot(append_opt %in% c("0", "1", "replace"))
append <- append_opt != "0"
stopifnot(all(tasks %in% sbibm_task_names), n_obs >= 1, n_obs <= 10, is_max >= 1)
if (!grepl("/", prefix)) prefix <- file.path(bench_script_dir(), prefix)
csv_mean <- paste0(prefix, ".csv")
csv_obs <- paste0(prefix, "_obs.csv")

cpu <- grep("^model name", readLines("/proc/cpuinfo", warn = FALSE), value = TRUE)
cat(sprintf("nbi %s, %s, BLAS %s\nCPU: %s x %d (parallel::detectCores()), load average at start: %s\n",
            utils::packageVersion("nbi"), R.version.string, extSoftVersion()[["BLAS"]],
            if (length(cpu)) sub("^model name\\s*:\\s*", "", cpu[1]) else "?",
            parallel::detectCores(), paste(readLines("/proc/loadavg", warn = FALSE), collapse = " ")))
cat(sprintf("tasks %s; budgets %s; observations 1..%d; %d draws per C2ST sample; methods: %s; threads %d\n\n",
            paste(tasks, collapse = ", "), paste(budgets, collapse = ", "), n_obs, n_draws,
            paste(c(npe = "NPE", snpe_is = sprintf("SNPE-IS (%d rounds)", n_rounds))[methods],
                  collapse = " + "), threads))

summarise <- function(r) {
  s <- stats::aggregate(r[c("c2st", "c2st_is", "efficiency", "is_draws", "adapt", "predict_s",
                            "c2st_s")], r[c("task", "method", "budget")], mean)
  s$n_obs <- stats::aggregate(r$obs, r[c("task", "method", "budget")], length)$x
  s$sims_used <- stats::aggregate(r$sims_used, r[c("task", "method", "budget")], mean)$x
  # amortised: one fit shared by all observations; SNPE-IS: one fit per observation
  s$fit_s <- stats::aggregate(r$fit_s, r[c("task", "method", "budget")],
                              function(v) sum(unique(v)))$x
  s$wall_s <- stats::aggregate(r$wall_s, r[c("task", "method", "budget")], max)$x
  s$fit_average <- stats::aggregate(r$fit_average, r[c("task", "method", "budget")], max)$x
  s$fit_average2 <- stats::aggregate(r$fit_average2, r[c("task", "method", "budget")], max)$x
  s$precision <- stats::aggregate(r$precision, r[c("task", "method", "budget")],
                                  function(v) paste(unique(v), collapse = "+"))$x
  s <- merge(s, sbibm_published_npe, by = c("task", "budget"), all.x = TRUE)
  s <- s[order(match(s$task, sbibm_task_names), s$method, s$budget), ]
  s[, c("task", "method", "budget", "n_obs", "sims_used", "c2st", "c2st_is", "efficiency",
        "is_draws", "adapt", "c2st_sbibm_npe", "fit_s", "predict_s", "c2st_s", "wall_s", "fit_average",
    "fit_average2", "precision")]
}

old_obs <- if (append && file.exists(csv_obs)) utils::read.csv(csv_obs) else NULL
# rows from before fit() averaged its iterates have no such column
if (!is.null(old_obs) && is.null(old_obs$fit_average)) old_obs$fit_average <- 0
# rows from before fit() validated a second, shorter average
if (!is.null(old_obs) && is.null(old_obs$fit_average2)) old_obs$fit_average2 <- 0
# rows from before c2st_is could draw more proposals resampled n_draws of them
if (!is.null(old_obs) && is.null(old_obs$is_draws)) old_obs$is_draws <- n_draws
# rows from before adaptive importance sampling used the surrogate as the proposal
if (!is.null(old_obs) && is.null(old_obs$adapt)) old_obs$adapt <- 0L
# rows from before the precision could be chosen computed in float64
if (!is.null(old_obs) && is.null(old_obs$precision)) old_obs$precision <- "float64"
rows <- list()
t_start <- proc.time()[["elapsed"]]
for (nm in tasks) {
  task <- sbibm_task(nm)
  obs <- seq_len(n_obs)
  t0 <- proc.time()[["elapsed"]]
  refs <- lapply(obs, function(k) with_seed_local(seed + 1000L + k,
                                                  task$reference(task$observations[k, ], n_draws)))
  cat(sprintf("%s: reference draws for %d observation(s) in %.1f s\n", nm, n_obs,
              proc.time()[["elapsed"]] - t0))
  for (meth in methods) {
    for (b in budgets) {
      t0 <- proc.time()[["elapsed"]]
      r <- sbibm_accuracy(task, b, obs = obs, n_draws = n_draws, references = refs,
                          method = meth, n_rounds = n_rounds, seed = seed, threads = threads,
                          is_max = is_max, adapt = adapt, is_c2st = is_c2st)
      r$wall_s <- proc.time()[["elapsed"]] - t0
      r$fit_average <- 0.999  # fit()'s default: the better of two iterate averages is kept
      r$fit_average2 <- 0.99
      r$precision <- precision
      rows[[length(rows) + 1L]] <- r
      cat(sprintf("%-16s %-7s %7g sims: C2ST %.3f (per obs %s), IS-resampled %.3f (from %.0f proposals on average), efficiency %.3f; fit %.1f s, wall %.1f s\n",
                  nm, meth, b, mean(r$c2st), paste(sprintf("%.3f", r$c2st), collapse = " "),
                  mean(r$c2st_is), mean(r$is_draws), mean(r$efficiency), sum(unique(r$fit_s)),
                  r$wall_s[1]))
      all_obs <- do.call(rbind, rows)
      keep <- old_obs
      if (append_opt == "replace" && !is.null(keep)) {
        cell <- function(d) paste(d$task, d$method, d$budget)
        keep <- keep[!cell(keep) %in% cell(all_obs), , drop = FALSE]
      }
      utils::write.csv(rbind(keep, all_obs[names(keep %||% all_obs)]), csv_obs, row.names = FALSE)
      utils::write.csv(summarise(rbind(keep, all_obs[names(keep %||% all_obs)])), csv_mean,
                       row.names = FALSE)
    }
  }
}

res <- summarise(do.call(rbind, rows))
cat(sprintf("\nMeans over observations (C2ST: 0.5 = indistinguishable from the reference; total %.1f min)\n",
            (proc.time()[["elapsed"]] - t_start) / 60))
fmt <- res
for (f in c("c2st", "c2st_is", "efficiency", "c2st_sbibm_npe")) fmt[[f]] <- sprintf("%.3f", fmt[[f]])
for (f in c("fit_s", "predict_s", "c2st_s", "wall_s")) fmt[[f]] <- sprintf("%.1f", fmt[[f]])
fmt$is_draws <- sprintf("%.0f", fmt$is_draws)
print(fmt, row.names = FALSE)
cat("\nwritten:", csv_mean, "and", csv_obs, "\n")
