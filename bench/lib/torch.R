# Shared by the benches: the PyTorch reference scripts of bench/reference/, run in the same
# session as nbi's timings (a ratio against figures from another CPU would mean nothing).

# a python that imports torch (NBI_BENCH_PYTHON, else python3, else /usr/bin/python3), or ""
# (also with NBI_BENCH_NO_TORCH=1: as on a machine without it)
find_torch_python <- function() {
  py_ok <- function(py) {
    st <- suppressWarnings(tryCatch(
      system2(py, c("-c", shQuote("import torch")), stdout = FALSE, stderr = FALSE),
      error = function(e) 1L))
    identical(as.integer(st), 0L)
  }
  if (identical(Sys.getenv("NBI_BENCH_NO_TORCH"), "1")) return("")
  for (py in unique(c(Sys.getenv("NBI_BENCH_PYTHON"), "python3", "/usr/bin/python3")))
    if (nzchar(py) && py_ok(py)) return(py)
  ""
}

# one field of the scripts' JSON lines (one line per thread count)
json_field <- function(lines, key, num = TRUE) {
  m <- regmatches(lines, regexec(sprintf('"%s": (?:"([^"]*)"|([-+0-9.eE]+))', key), lines,
                                 perl = TRUE))
  v <- vapply(m, function(g) if (length(g)) paste0(g[2], g[3]) else NA_character_, "")
  if (num) suppressWarnings(as.numeric(v)) else v
}

# run `script` with `args`; a data frame with the numeric `fields` (one row per JSON line)
# and the torch version and BLAS, or NULL (with a message) when it fails
run_torch_script <- function(python, script, args, fields) {
  err <- tempfile()
  on.exit(unlink(err))
  out <- suppressWarnings(tryCatch(system2(python, c(shQuote(script), args), stdout = TRUE,
                                           stderr = err),
                                   error = function(e) structure(character(0), status = 1L)))
  lines <- grep("^\\{", out, value = TRUE)
  res <- as.data.frame(lapply(stats::setNames(fields, fields), function(f) json_field(lines, f)))
  if (!is.null(attr(out, "status")) || nrow(res) == 0 || anyNA(res)) {
    msg <- if (file.exists(err)) readLines(err, warn = FALSE) else character(0)
    cat("  PyTorch run failed; no same-run reference.", utils::tail(msg, 3), sep = "\n    ")
    cat("\n")
    return(NULL)
  }
  res$torch <- json_field(lines, "torch", num = FALSE)
  res$blas <- json_field(lines, "blas", num = FALSE)
  res
}
