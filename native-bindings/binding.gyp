{
  "targets": [
    {
      "target_name": "isthmus_native",
      "sources": [
        "src/binding.c",
        "src/tun_linux.c",
        "src/offload_linux.c",
        "src/udp_linux.c",
        "src/aead.c",
        "src/relay_fast.c",
        "src/relay_fast_napi.c",
        "src/busy_poll.c"
      ],
      "defines": ["NAPI_VERSION=8"],
      "cflags_c": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
