/* chat MODEL [PROMPT]: streams a chat answer to stdout through kiln's C API (kiln.h).
 *
 *   cc chat.c $(pkg-config --cflags --libs kiln) -o chat
 *   ./chat ~/.cache/kiln/models/default.gguf "Why is the sky blue?"
 *
 * Sends one OpenAI chat request with "stream": true and prints each chunk's
 * choices[0].delta.content as it arrives. Greedy decoding (temperature 0), so a run is
 * reproducible. The JSON handling is the little this example needs: escaping the prompt, and
 * unescaping the one string field it reads. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kiln/kiln.h"

/* Writes `s` to `out` as the inside of a JSON string; 0 when it does not fit. */
static int json_escape(const char* s, char* out, size_t size) {
  size_t n = 0;
  for (; *s != '\0'; ++s) {
    unsigned char c = (unsigned char)*s;
    if (n + 7 >= size) return 0;
    if (c == '"' || c == '\\') {
      out[n++] = '\\';
      out[n++] = (char)c;
    } else if (c < 0x20) {
      n += (size_t)sprintf(out + n, "\\u%04x", c);
    } else {
      out[n++] = (char)c;
    }
  }
  out[n] = '\0';
  return 1;
}

/* Writes one UTF-8 code point to stdout. */
static void put_utf8(unsigned long cp) {
  if (cp < 0x80) {
    putchar((int)cp);
  } else if (cp < 0x800) {
    putchar((int)(0xc0 | (cp >> 6)));
    putchar((int)(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    putchar((int)(0xe0 | (cp >> 12)));
    putchar((int)(0x80 | ((cp >> 6) & 0x3f)));
    putchar((int)(0x80 | (cp & 0x3f)));
  } else {
    putchar((int)(0xf0 | (cp >> 18)));
    putchar((int)(0x80 | ((cp >> 12) & 0x3f)));
    putchar((int)(0x80 | ((cp >> 6) & 0x3f)));
    putchar((int)(0x80 | (cp & 0x3f)));
  }
}

static unsigned long hex4(const char* p) {
  char buf[5];
  memcpy(buf, p, 4);
  buf[4] = '\0';
  return strtoul(buf, NULL, 16);
}

/* Prints the decoded value of the first "content":"…" string in a chunk, if any. */
static void print_content(const char* chunk) {
  const char* p = strstr(chunk, "\"content\":\"");
  if (p == NULL) return;
  for (p += 11; *p != '\0' && *p != '"'; ++p) {
    if (*p != '\\') {
      putchar(*p);
      continue;
    }
    ++p;
    switch (*p) {
      case 'n': putchar('\n'); break;
      case 't': putchar('\t'); break;
      case 'r': putchar('\r'); break;
      case 'b': putchar('\b'); break;
      case 'f': putchar('\f'); break;
      case 'u': {
        unsigned long cp = hex4(p + 1);
        p += 4;
        if (cp >= 0xd800 && cp < 0xdc00 && p[1] == '\\' && p[2] == 'u') { /* surrogate pair */
          cp = 0x10000 + ((cp - 0xd800) << 10) + (hex4(p + 3) - 0xdc00);
          p += 6;
        }
        put_utf8(cp);
        break;
      }
      default: putchar(*p); break; /* \" \\ \/ */
    }
  }
  fflush(stdout);
}

int main(int argc, char** argv) {
  const char* prompt = argc > 2 ? argv[2] : "Write a haiku about the sea.";
  kiln_engine* engine = NULL;
  kiln_request* request = NULL;
  const char* chunk = NULL;
  kiln_status status;
  char escaped[8192], body[8400];

  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: %s MODEL [PROMPT]\n", argv[0]);
    return 2;
  }
  if (kiln_engine_create(argv[1], "{\"mode\": \"interactive\"}", &engine) != KILN_OK) {
    fprintf(stderr, "chat: %s\n", kiln_last_error());
    return 1;
  }
  if (!json_escape(prompt, escaped, sizeof escaped)) {
    fprintf(stderr, "chat: the prompt is too long for this example (%zu bytes)\n", strlen(prompt));
    kiln_engine_destroy(engine);
    return 2;
  }
  snprintf(body, sizeof body,
           "{\"messages\": [{\"role\": \"user\", \"content\": \"%s\"}], "
           "\"stream\": true, \"temperature\": 0, \"max_tokens\": 256}",
           escaped);
  if (kiln_request_create(engine, KILN_ENDPOINT_CHAT, body, &request) != KILN_OK) {
    fprintf(stderr, "chat: %s\n", kiln_last_error());
    kiln_engine_destroy(engine);
    return 1;
  }
  while ((status = kiln_request_next(request, -1, &chunk)) == KILN_OK) print_content(chunk);
  putchar('\n');
  if (status != KILN_DONE) fprintf(stderr, "chat: %s\n", kiln_last_error());
  kiln_request_destroy(request);
  kiln_engine_destroy(engine);
  return status == KILN_DONE ? 0 : 1;
}
