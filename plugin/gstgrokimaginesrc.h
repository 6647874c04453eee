/* gst-grokimagine
 * Copyright (C) 2026 gst-grokimagine authors
 * SPDX-License-Identifier: LGPL-2.1-or-later
 */
#pragma once

#include <gst/gst.h>
#include <gst/base/gstbasesrc.h>

G_BEGIN_DECLS

#define GST_TYPE_GROK_IMAGINE_SRC (gst_grok_imagine_src_get_type ())
G_DECLARE_FINAL_TYPE (GstGrokImagineSrc, gst_grok_imagine_src, GST,
    GROK_IMAGINE_SRC, GstBaseSrc);

#define GST_TYPE_GROK_IMAGINE_API (gst_grok_imagine_api_get_type ())
GType gst_grok_imagine_api_get_type (void);
#define GST_TYPE_GROK_IMAGINE_MODEL (gst_grok_imagine_model_get_type ())
GType gst_grok_imagine_model_get_type (void);

GST_ELEMENT_REGISTER_DECLARE (grokimaginesrc);

G_END_DECLS
