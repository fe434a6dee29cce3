#pragma once
/// Constant text that goes only to printf (the log lines, their %s arguments, snprintf formats), kept in flash on the
/// ESP8266: its .rodata is loaded into the 80 KiB of data RAM, and the core's printf (newlib-xtensa's nano vfprintf)
/// reads formats and %s arguments byte by byte with pgm_read_byte, so text in flash may go there and nowhere else (not
/// to strcmp, memcpy or a JSON scanner). A section name as the core's PSTR gives it (.irom0.pstr.*, which its linker
/// script places in flash). On the host the text is an ordinary literal, so printf's format checks still see it.
#if defined(__XTENSA__)
#define E2EE_TEXT_STR_(x) #x
#define E2EE_TEXT_STR(x) E2EE_TEXT_STR_(x)
#define E2EE_TEXT(s)                                                                                                             \
  (__extension__({                                                                                                               \
    static const char e2ee_text_[] __attribute__((aligned(4), section(".irom0.pstr.e2ee." E2EE_TEXT_STR(__LINE__) "." E2EE_TEXT_STR(__COUNTER__)))) = (s); \
    &e2ee_text_[0];                                                                                                              \
  }))
#else
#define E2EE_TEXT(s) (s)
#endif
