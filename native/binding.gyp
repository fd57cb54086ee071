# Built by scripts/build-native.mjs, which detects the CBLAS and passes its flags:
#   node-gyp rebuild -- -Dcblas_cflags="-I..." -Dcblas_libs="-L... -lopenblas" -Dcblas_rpath=...
{
  "variables": {
    "cblas_cflags%": "",
    "cblas_libs%": "-lopenblas",
    "cblas_rpath%": "",
  },
  "targets": [
    {
      "target_name": "pocketlm_blas",
      "sources": ["src/blas_addon.c", "src/pool.c", "src/attention.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-Wno-psabi", "<@(cblas_cflags)"],
      "libraries": ["<@(cblas_libs)", "-ldl", "-lpthread"],
      "conditions": [
        ["cblas_rpath != ''", { "ldflags": ["-Wl,-rpath,<(cblas_rpath)"] }],
      ],
    }
  ]
}
