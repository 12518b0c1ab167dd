/* kiln.h must compile as strict C99 on its own (ctest capi_header_c99 runs the compiler with
 * -std=c99 -Wall -Wextra -pedantic -Werror on this file). */
#include "kiln/kiln.h"

int kiln_header_c99_check(void);
int kiln_header_c99_check(void) {
  kiln_status s = KILN_OK;
  kiln_endpoint e = KILN_ENDPOINT_CHAT;
  kiln_chunk_callback cb = 0;
  return (int)s + (int)e + (cb == 0) + KILN_ABI_VERSION + (int)KILN_TOKENIZE_PARSE_SPECIAL;
}
